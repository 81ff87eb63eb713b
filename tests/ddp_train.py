"""Run by the tests under torchrun: one DDP training of varireal.finetune.train on a study written to disk.

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_train.py SPEC.json

SPEC: {"settings": TrainParams as JSON, "real_dir", "sets": {feas: dir}, "clip", "root", "checkpoints",
"kill_after_checkpoint": bool, optional "protocol" (default heldout_val)}. With kill_after_checkpoint, rank 0 kills itself with SIGKILL right
after writing the first checkpoint, as an out-of-memory kill or a pre-empted node would.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from varireal.finetune import checkpoint
from varireal.finetune.train import train
from varireal.launch import ranks
from varireal.settings.train import TrainParams


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if spec["kill_after_checkpoint"]:
        save = checkpoint.save

        def save_then_die(*args, **kwargs):
            save(*args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)

        checkpoint.save = save_then_die
    root = Path(spec["root"])
    with ranks() as group:
        train(
            TrainParams.model_validate(spec["settings"]),
            real_dir=spec["real_dir"],
            synthetic_dirs=spec["sets"],
            feas="mixed",
            protocol=spec.get("protocol", "heldout_val"),
            model_dir=spec["clip"],
            prefix="",
            out_dir=root / "train",
            report_dir=root / "reports" / "train",
            checkpoint_dir=spec["checkpoints"],
            ranks=group,
        )


if __name__ == "__main__":
    main(sys.argv[1])
