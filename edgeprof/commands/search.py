"""Hardware-aware search: `search NAME --device DEV --predictor P --target-ms T --out result.json [options]`.

One sub-command per registered search (`lightnas` built in; a plugin module named in EDGEPROF_PLUGINS adds
its own with `hwsearch.register_search`). Each declares its own options (`add_arguments`); these are common
to all: the device, its predictor and the target; `--verify` measures the found network on DEV through the
agent, in `--rounds` separate jobs, and reports the measured median against the target and the prediction;
`--correct N` closes the loop: while the measured network misses the target by more than `--tolerance`, up
to N neighbours are measured, chosen by predictions corrected with the measured/predicted ratios, and the
result is the measured one nearest the target. The result JSON holds the architecture, the prediction, the
verification and what the search records (LightNAS: the λ history, plotted in a PNG beside it).
The work is `hwsearch.pipeline`'s; this module parses and prints.
"""

from __future__ import annotations

import argparse
from typing import Any

from edgeprof.arguments import check_out_path
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json, session_progress
from spaces.errors import UserInputError


def target_spec(text: str) -> float | str:
    """A number, or 'pNN' (checked when the dataset is read: hwsearch.pipeline.parse_percentile)."""
    try:
        return float(text)
    except ValueError:
        if text.strip().lower().startswith("p"):
            return text.strip().lower()
        raise argparse.ArgumentTypeError(f"expected a number or pNN (a percentile), got {text!r}") from None


def add_common_arguments(s: argparse.ArgumentParser) -> None:
    """The options every search takes: device, predictor, target, verification and output. The device, the
    predictor and the target are required unless the search says it runs without (`needs_predictor`,
    `needs_target`: SurgeNAS at a fixed β), which `run` checks with a message naming the option."""
    s.add_argument("--device", help="the device the predictor is for (and --verify measures on)")
    s.add_argument("--predictor", help="a saved predictor folder of DEV")
    target = s.add_mutually_exclusive_group()
    target.add_argument("--target-ms", "--max-latency-ms", dest="target_ms", type=target_spec, metavar="MS|pNN",
                        help="latency target (a search's latency budget) in ms, or pNN: the NN-th percentile "
                             "of DEV's measured latencies of "
                             "the predictor's space in --db (p50: its median)")
    target.add_argument("--target-mj", "--max-energy-mj", dest="target_mj", type=target_spec, metavar="MJ|pNN",
                        help="energy target in mJ (the predictor must predict energy), or pNN as for --target-ms")
    s.add_argument("--verify", action="store_true", help="measure the found network on DEV through the agent")
    s.add_argument("--rounds", type=int, default=5, help="verification rounds, each a separate job (default 5)")
    s.add_argument("--correct", type=int, default=0, metavar="N",
                   help="with --verify: when the found network misses the target by more than --tolerance, "
                        "measure up to N neighbours that the measurements point to, and keep the measured "
                        "network nearest the target (default 0: verify only)")
    s.add_argument("--loop-predictor", help="with --correct: a saved predictor of DEV (say a GNN) to judge the "
                                            "loop's candidates instead of --predictor")
    s.add_argument("--tolerance", type=float, default=0.02,
                   help="relative miss --correct accepts (default 0.02); keep it above the board's noise")
    s.add_argument("--db", default=DEFAULT_DB, help=f"dataset for the verification measurements (default {DEFAULT_DB})")
    s.add_argument("--out", required=True, help="result JSON to write (a search's plot goes beside it as .png)")
    s.add_argument("--json", action="store_true", help="print the result as JSON (progress stays on stderr)")
    s.add_argument("-q", "--quiet", action="store_true", help="no progress bars or log lines on stderr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """One sub-parser per registered search: the common options plus the search's own."""
    from hwsearch.registry import list_searches, search_class

    sub = p.add_subparsers(dest="search", metavar="SEARCH")
    sub.required = True
    for name in list_searches():
        cls = search_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()
        s = sub.add_parser(name, help=getattr(cls, "summary", None) or (doc[0] if doc else name))
        add_common_arguments(s)
        declare = getattr(cls, "add_arguments", None)
        if callable(declare):
            try:
                declare(s)
            except argparse.ArgumentError as e:  # a plugin's option clashes: only that search fails, at run
                s.set_defaults(_declare_error=f"search {name!r} declares an option that clashes: {e}")


def run(args: argparse.Namespace) -> int:
    from hwsearch.pipeline import (
        SearchSetup,
        VerifyPlan,
        load_checked_predictor,
        search_and_verify,
        write_result,
    )

    if getattr(args, "_declare_error", None):
        raise UserInputError(args._declare_error)
    check_out_path(args.out, folder=False)  # before the search and its measurements
    metric = "energy" if args.target_mj is not None else "latency"
    target = args.target_mj if metric == "energy" else args.target_ms
    check_required(args, target)
    if args.correct and target is None:
        raise UserInputError("--correct closes the loop on a target: add --target-ms or --target-mj")
    if args.correct and not args.verify:
        raise UserInputError("--correct measures networks on the device: add --verify")
    if args.loop_predictor and not args.correct:
        raise UserInputError("--loop-predictor judges the candidates of --correct: add --correct N")
    setup = SearchSetup.load(args.predictor, target, metric, args.device, progress=not args.quiet, db=args.db)
    plan = None
    if args.verify:
        loop_pred = load_checked_predictor(args.loop_predictor, args.device, metric) if args.loop_predictor else None
        plan = VerifyPlan(args.device, args.db, args.rounds, args.correct, args.tolerance, loop_pred)
    done = search_and_verify(args.search, args, setup, plan, log=_log(args.quiet),
                             progress=lambda: session_progress(args.quiet))
    if done is None:
        return 0  # under torchrun, rank 0 verifies, writes and prints
    result, res = done
    out, png = write_result(result, res, args.out)
    if args.json:
        print_json({**res, "plot": str(png) if png else None})
        return 0
    print_summary(res)
    err.print(f"wrote {out}" + (f" and {png}" if png else ""))
    return 0


def check_required(args: argparse.Namespace, target: Any) -> None:
    """UserInputError naming the option a search needs and was not given (argparse's own exit code, 2)."""
    from hwsearch.registry import search_class

    cls = search_class(args.search)
    needs_predictor, needs_target = getattr(cls, "needs_predictor", True), getattr(cls, "needs_target", True)
    missing = [flag for flag, needed, given in (
        ("--device", needs_predictor or args.predictor or args.verify, args.device),
        (getattr(cls, "predictor_flag", "--predictor"), needs_predictor or target is not None, args.predictor),
        ("--target-ms or --target-mj", needs_target, target is not None)) if needed and not given]
    if missing:
        raise UserInputError(f"search {args.search} needs {', '.join(missing)}")


def _log(quiet: bool) -> Any:
    from rich.markup import escape

    return (lambda _: None) if quiet else (lambda text: err.print(escape(text)))


def print_summary(res: dict[str, Any]) -> None:
    """The found network against the target and, after --verify, the measurement (and the closed loop)."""
    from rich.markup import escape

    unit, target, predicted = res["unit"], res["target"], res["predicted"]
    data = res.get("data") if isinstance(res.get("data"), dict) else None
    if predicted is None:
        said = "(no predictor)"
    elif target is None:
        said = f"predicted {predicted:.4g} {unit} (no target)"
    else:
        said = (f"predicted {predicted:.4g} {unit} for a target of {target:g} {unit} "
                f"({100 * res['relative_error']:+.2f}%)")
    err.print(f"[bold]{escape(res['arch_id'])}[/] {said}"
              + (f"; data: {escape(str(data.get('name', '?')))}" if data else "") + f"; {res['search_s']:.0f} s")
    if "n_feasible" in res:  # random search: how the network was chosen
        err.print(f"{res['n']} networks sampled, {res['n_feasible']} predicted within the target; kept "
                  + (f"the best by {escape(str(res['proxy']))} ({res['proxy_value']:.4g})" if res["feasible"]
                     else "the predicted-cheapest (none within the target)"))
    v = res.get("verify")
    if v:
        loop = res.get("closed_loop")
        vs_target = "" if v["error_vs_target"] is None else f": {100 * v['error_vs_target']:+.2f}% from the target"
        vs_pred = "" if v["predictor_error"] is None else f", predictor {100 * v['predictor_error']:+.2f}%"
        err.print(f"measured on {v['device']}: {v['median']:.4g} {unit} (median of {v['rounds']} rounds, spread "
                  f"{100 * v['spread']:.1f}%){vs_target}{vs_pred}"
                  + (f"; closed loop: {loop['measurements']} network(s) measured, {loop['stopped']}" if loop else ""))
    from hwsearch.registry import search_class

    own = getattr(search_class(res["search"]), "summary_lines", None)  # a search's own lines (domino: its set)
    for line in own(res) if callable(own) else []:
        err.print(escape(line))
    for s in res.get("scale") or []:  # SurgeNAS --scale: the found network widened per board
        v = (s.get("scaled") or {}).get("verify")
        measured = "" if not v else (f"; the scaled network measured {v['median']:.4g} {unit}"
                                     + ("" if v["error_vs_target"] is None
                                        else f" ({100 * v['error_vs_target']:+.1f}% against ϕ = 1)"))
        err.print(f"scaled on {escape(s['device'])}: {escape(s['choice']['verdict'])}{measured}")
