"""The study across experiments: `varireal grid` (the commands that make the grid, its cost first),
`varireal study` (the paper's table with intervals, paired tests and a verdict per claim, datasets
side by side, one table per procedure) and `varireal report` (a pull request against its base).

runs: a run and the words about runs; collect: the runs and their predictions; labels: each run's
label against what it recorded; cells, table: one dataset's column; claims: the paper's claims;
procedure: the procedure switches; whole: datasets and procedures together; stats: the statistics;
markdown, figure, write: the study's files; grid: `varireal grid`; settings: params `study:`;
report: the pull request's markdown.
"""
