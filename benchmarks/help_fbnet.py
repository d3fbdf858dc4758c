"""HELP's few-shot protocol on the FBNet space: our meta-learned `HelpPredictor` against HELP's Table 2.

Protocol (HELP's `loader.py` with the FBNet settings, shared spec field-practice §2): meta-train on 9
devices, select on 4 meta-valid devices, test on fpga, raspi4 and eyeriss. Rows of HELP's `arch.pt`:
pool [0, 4000), query [4000, 5000), each without its 10% fastest and slowest archs on the device; the
reference archs are the rows of HELP's FBNet `hardware_embedding_index.pt`. 10 target samples from the
pool, Spearman rho on the query, mean over 5 draws. Target: mean >= 0.93 (HELP 0.910), no device below
HELP. Options as in help_nb201.py, `--quick` (a smoke size) included.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from help_nb201 import parse_args, print_table, run_protocol

from predictors.help_ensemble import DEFAULT_MEMBERS
from spaces import create_space
from spaces.fbnet import find_help_data, help_fbnet_archs, load_plain_torch_file

FBNET = {
    "space": "fbnet", "folder": "fbnet", "pool": 4000, "query": 1000,
    "train": ["1080ti_1", "1080ti_32", "1080ti_64", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
              "essential_ph_1", "samsung_s7"],
    "valid": ["titanx_1", "titanx_32", "titanx_64", "gold_6240"],
    "help": {"fpga": 0.892, "raspi4": 0.887, "eyeriss": 0.943},
    "help_mean": 0.910, "target": 0.93,
    "members": DEFAULT_MEMBERS["fbnet"],  # three MLPs: why in predictors.help_ensemble
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data = find_help_data(args.help_dir)
    sp = create_space("fbnet")
    arch_ids = [sp.arch_id(a) for a in help_fbnet_archs(data)]
    ref_rows = [int(r) for r in load_plain_torch_file(data / "fbnet" / "hardware_embedding_index.pt")]
    res = run_protocol(FBNET, arch_ids, ref_rows, args)
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        print_table(res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
