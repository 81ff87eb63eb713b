"""The study across experiments: `varireal study` (the paper's table with intervals and paired
tests, from HEAD and its experiments) and `varireal report` (a pull request against its base).

stats: paired statistics; collect: the runs and their test predictions; table: the table,
the comparisons and the refusals; figure: figure.png; write: the study's files (table, comparisons,
figure); report: the pull request's markdown.
"""
