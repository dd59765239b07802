"""Calibration fine-tuning on Ray Train + DeepSpeed: soft- and hard-target CFT with data mixing.

Entry points: `trainers.config.TrainConfig`, `trainers.run.run_training`, and the CLI
`python -m trainers.train`.
"""

import os
import sys

# DeepSpeed JIT-compiles its ops (on CPU hosts, its shared-memory collective) into TORCH_EXTENSIONS_DIR
# against the running environment's torch. A cache shared by two virtual environments (two checkouts)
# is rebuilt whenever the other one loads it, 23 s inside a trial on 2 cores, so each environment
# keeps its own, where scripts/setup.sh prebuilds it.
os.environ.setdefault("TORCH_EXTENSIONS_DIR", os.path.join(sys.prefix, "torch_extensions"))
