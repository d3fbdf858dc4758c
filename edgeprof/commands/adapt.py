"""Adapt a meta-trained predictor to its target from K samples of it: a HELP-style latency predictor to a
new device (`--device`), or a maml-acc accuracy predictor to a task (`--task`).

The device also needs its latencies on the predictor's reference architectures (its hardware
embedding); the error lists them when they are not in the dataset, so you can profile them. A maml-acc
predictor adapted to a task it was meta-trained on draws its K pairs, and is scored, only among the
archs meta-training never saw.

Choosing the K networks instead of drawing them: `--select K --archs-out FILE` proposes K archs to measure
on the device (by an acquisition rule, `predictors.acquisition`; the reference archs first when the device
lacks them), `edgeprof profile DEV --space S --archs FILE` measures them, and `--archs FILE --out DIR`
adapts on exactly the listed archs.
"""

from __future__ import annotations

import argparse
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeprof.arguments import add_setting_arguments, check_out_path, given_options, setting_kwargs
from edgeprof.commands import DEFAULT_DB
from edgeprof.output import err, print_json
from profiler.store import Store
from spaces.errors import UserInputError

if TYPE_CHECKING:
    import numpy as np

ENUMERABLE = 100_000  # --select scores every arch of a space this small (NB201: 15,625) unless --candidates
DEFAULT_CANDIDATES = 5000  # candidates drawn from a larger space when --candidates is not given


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("predictor", help="a meta-trained predictor folder (edgeprof train meta, or train maml-acc)")
    p.add_argument("--db", default=DEFAULT_DB)
    p.add_argument("--device", help="the device to adapt a latency predictor (train meta) to")
    p.add_argument("--task", help="the accuracy task to adapt a maml-acc predictor to (e.g. cifar100)")
    p.add_argument("--metric", help="maml-acc: the stored accuracy metric (default: the predictor's)")
    p.add_argument("--source", help="maml-acc: the source of the figures (default: the predictor's)")
    p.add_argument("--samples", type=int, help="K measured archs (or accuracy pairs) drawn at random (default 10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="folder for the adapted predictor (not with --select: it adapts nothing)")
    p.add_argument("--select", type=int, metavar="K",
                   help="propose K archs to measure on --device (written to --archs-out) instead of adapting")
    p.add_argument("--archs-out", metavar="FILE", help="--select: the file of proposed arch ids, one a line (what "
                                                      "`edgeprof profile DEV --space S --archs FILE` reads)")
    p.add_argument("--rule", help="--select: the acquisition rule: random, coverage, disagreement or doptimal "
                                  "(default: the one measured best, predictors.acquisition.DEFAULT_RULE)")
    p.add_argument("--candidates", type=int, metavar="N",
                   help="--select: draw N candidate archs (seeded) instead of the whole space (the default where "
                        f"the space has at most {ENUMERABLE:,} archs)")
    p.add_argument("--archs", metavar="FILE",
                   help="adapt on exactly the measured archs listed in FILE (one arch id a line; the reference "
                        "latencies come from the store)")
    p.add_argument("--force", action="store_true", help="replace the predictor already in --out")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_setting_arguments(p)


def run(args: argparse.Namespace) -> int:
    from predictors.hardware_adaptive import HardwareAdaptivePredictor
    from predictors.io import check_out_folder, load_predictor
    from predictors.meta_accuracy import MetaAccuracyPredictor

    check_modes(args)
    if args.select is None:
        check_out_path(args.out, folder=True)
        check_out_folder(args.out, args.force)
    pred = load_predictor(args.predictor)
    if isinstance(pred, MetaAccuracyPredictor):
        if args.select is not None or args.archs is not None:
            raise UserInputError(f"{'--select' if args.select is not None else '--archs'}: choosing and listing the "
                                 f"archs to measure is for latency predictors; {args.predictor} is a maml-acc "
                                 "accuracy predictor (adapt it with --task and --samples)")
        return adapt_accuracy(args, pred)
    if not isinstance(pred, HardwareAdaptivePredictor):
        raise UserInputError(f"{args.predictor} is a {pred.kind!r} predictor, not a meta-trained one (edgeprof "
                             "train meta, or train maml-acc)")
    given = given_options(args, "task", "metric", "source")
    if given:
        raise UserInputError(f"{', '.join(given)}: {args.predictor} is a {pred.kind!r} latency predictor, adapted "
                             "to a device with --device (--task adapts a maml-acc accuracy predictor)")
    if not args.device:
        raise UserInputError(f"--device is required: the device to adapt the {pred.kind!r} latency predictor "
                             f"{args.predictor} to")
    if args.select is not None:
        return select_archs(args, pred)
    return adapt_latency(args, pred)


def check_modes(args: argparse.Namespace) -> None:
    """Refuse option mixes before anything loads: --select adapts nothing (no --out, --samples, --archs),
    --archs adapts on its list (no --samples), the --select options need --select, the others need --out."""
    if args.select is not None:
        given = given_options(args, "out", "samples", "archs", "force", "task")
        if given:
            raise UserInputError(f"{', '.join(given)}: --select only proposes the archs to measure and adapts "
                                 f"nothing; leave {', '.join(given)} out (once they are measured, adapt with "
                                 "--archs FILE --out DIR)")
        if args.select < 1:
            raise UserInputError(f"--select: K must be at least 1 arch to propose, got {args.select}")
        if not args.archs_out:
            raise UserInputError("--select needs --archs-out FILE: where the proposed arch ids are written")
        check_out_path(args.archs_out, folder=False, option="--archs-out")
        return
    given = given_options(args, "archs_out", "rule", "candidates")
    if given:
        raise UserInputError(f"{', '.join(given)}: only with --select K (proposing the archs to measure)")
    if args.archs is not None and args.samples is not None:
        raise UserInputError(f"--archs {args.archs} adapts on exactly the listed archs and --samples draws "
                             f"{args.samples} at random: give one of them")
    if not args.out:
        raise UserInputError("--out is required: the folder for the adapted predictor (or --select K "
                             "--archs-out FILE to propose the archs to measure first)")
    if args.samples is None:
        args.samples = 10
    if args.samples < 2 and args.archs is None:
        raise UserInputError(f"--samples: at least 2 measurements are needed to adapt, got {args.samples}")


def measured(pred: Any, args: argparse.Namespace, none_ok: bool = False) -> dict[str, float]:
    """{arch id: ms} of --device in the predictor's space (its space config unless given); with
    `none_ok`, {} for a device with no measurements of the space yet (a new board)."""
    from predictors.data import NoDeviceDataError
    from predictors.evaluation import load_for

    with Store(args.db, readonly=True) as store:
        try:
            ids, y = load_for(pred, store, args.device, **setting_kwargs(args))
        except NoDeviceDataError:
            if not none_ok:
                raise
            return {}
    return dict(zip(ids, y.tolist(), strict=True))


def adapt_latency(args: argparse.Namespace, pred: Any) -> int:
    """Adapt to --device on K random measured archs (--samples) or exactly those of --archs FILE; scored on
    the device's other measured archs when there are any."""
    import numpy as np

    from predictors.evaluation import expected_line
    from predictors.hardware_adaptive import draw_support
    from predictors.io import save_predictor
    from predictors.metrics import summary_line
    from predictors.uncertainty import expected_error, shown, summary

    table = measured(pred, args)
    refs = pred.reference_ids()
    if args.archs is None:
        ids, y = list(table), np.fromiter(table.values(), dtype=np.float64, count=len(table))
        support, support_y, reference, rest, rest_y = draw_support(ids, y, refs, args.samples, args.seed,
                                                                   args.device)
    else:
        support, reference = listed_support(pred, args, table, refs)
        support_y = np.array([table[a] for a in support])
        seen = {*support, *refs}
        rest = [a for a in table if a not in seen]
        rest_y = np.array([table[a] for a in rest])
    # leave-one-out over the K samples, on copies of the meta-trained predictor (before it is adapted here)
    expected = expected_error(pred, support, support_y, reference=reference) if len(support) >= 2 else None
    if support:
        pred.adapt(support, support_y, reference=reference)
    else:  # the file listed only references: adapt on them (they are the support of every adaptation)
        pred.adapt(refs, np.array([reference[r] for r in refs]), reference=reference)
    metrics = card_metrics(pred, rest, rest_y, args.device, len(support))
    out = Path(args.out)
    save_predictor(pred, out, metrics=metrics, devices=[args.device], train_archs=[*support, *refs],
                   expected_error=expected)
    if args.json:
        print_json({"device": args.device, "out": str(out), "samples": len(support), "metrics": metrics,
                    "expected_error": shown(expected),
                    **({"archs": args.archs} if args.archs is not None else {})})
    else:
        how = f"the {len(support)} archs of {args.archs}" if args.archs is not None else f"{len(support)} samples"
        score = summary_line(metrics) if metrics else (f"no other measured archs of {args.device} to score it on "
                                                        "(every measured one was used to adapt)")
        err.print(f"adapted to {args.device} with {how} (+{len(refs)} reference archs): {score}")
        if expected is not None:
            err.print(expected_line(expected, metrics) if metrics else summary(expected))
        err.print(f"saved {out}")
    return 0


def card_metrics(pred: Any, rest: list[str], rest_y: np.ndarray, device: str, k: int) -> dict[str, Any] | None:
    """The metrics written on the adapted predictor's card and printed: held-out on the device's measured archs
    the adaptation did not use, None when there are none. (The one place the card's figures are assembled.)"""
    from predictors.evaluation import held_out

    if not rest:
        return None
    metrics, _, _ = held_out(pred, rest, rest_y, (), device, n_target_samples=k)
    return metrics


def listed_support(pred: Any, args: argparse.Namespace, table: dict[str, float], refs: list[str]
                   ) -> tuple[list[str], dict[str, float]]:
    """(the non-reference archs of --archs FILE, {reference id: ms}), every one measured on --device, else
    UserInputError naming the unmeasured archs (and how to measure them)."""
    from edgeprof.commands.profile import read_archs

    sp = pred.space_obj()
    listed = [sp.arch_id(a) for a in read_archs(args.archs, sp)]
    ref_set = set(refs)
    missing = [a for a in [*refs, *listed] if a not in table]
    missing = list(dict.fromkeys(missing))
    if missing:
        n_refs = sum(a in ref_set for a in missing)
        what = (f"{len(missing)} of the archs it needs ({n_refs} of the {len(refs)} reference archs, "
                f"{len(missing) - n_refs} listed in {args.archs})")
        add = [a for a in missing if a in ref_set and a not in listed]
        raise UserInputError(f"{args.device}: {what} are not measured: {', '.join(missing[:5])}"
                             f"{' ...' if len(missing) > 5 else ''}; measure them with `edgeprof profile "
                             f"{args.device} --space {pred.space} --archs {args.archs}`"
                             + (f" after adding the {len(add)} missing reference archs to {args.archs} (they "
                                "describe the device)" if add else ""))
    return [a for a in listed if a not in ref_set], {r: table[r] for r in refs}


def candidate_archs(pred: Any, n: int | None, seed: int) -> list[str]:
    """The archs --select chooses among: the whole space when it is small enough to score, else `n` (default
    DEFAULT_CANDIDATES) drawn with `seed`."""
    import numpy as np

    sp = pred.space_obj()
    if n is not None and n < 1:
        raise UserInputError(f"--candidates: N must be at least 1 arch, got {n}")
    if n is None and sp.size <= ENUMERABLE:
        n = sp.size
    n = min(n or DEFAULT_CANDIDATES, sp.size)
    return [sp.arch_id(a) for a in sp.sample_unique(n, np.random.default_rng(seed))]


def select_archs(args: argparse.Namespace, pred: Any) -> int:
    """--select K: write the archs to measure on --device to --archs-out. With the device's reference
    latencies in the store, the rule (--rule) chooses K among the unmeasured candidates; without them the
    file lists the references first, then K picks of a device-free rule, to measure before adapting."""
    from predictors.acquisition import DEFAULT_RULE, NEEDS_REFERENCE, RULES, select

    rule = args.rule or DEFAULT_RULE
    if rule not in RULES:
        raise UserInputError(f"--rule {rule!r}: unknown acquisition rule (known: {', '.join(RULES)})")
    table = measured(pred, args, none_ok=True)
    refs = pred.reference_ids()
    have_refs = all(r in table for r in refs)
    used = rule if have_refs or rule not in NEEDS_REFERENCE else "doptimal"
    ref_set = set(refs)
    cands = [a for a in candidate_archs(pred, args.candidates, args.seed) if a not in table and a not in ref_set]
    if args.select > len(cands):
        raise UserInputError(f"--select {args.select}: only {len(cands)} candidate archs are left unmeasured on "
                             f"{args.device}" + ("" if args.candidates is None else " (raise --candidates)"))
    reference = {r: table[r] for r in refs} if have_refs else None
    picks = select(pred, cands, args.select, used, args.seed, reference)
    archs = picks if have_refs else [*refs, *picks]
    head = [f"# edgeprof adapt --select {args.select}: archs to measure on {args.device} ({pred.space}), rule {used}"]
    if not have_refs:
        head.append(f"# the {len(refs)} reference archs first (they describe the device), then the {len(picks)} picks")
    Path(args.archs_out).write_text("\n".join([*head, *archs]) + "\n")
    if args.json:
        print_json({"device": args.device, "rule": used, "k": args.select, "archs": archs,
                    "references_measured": have_refs, "archs_out": str(args.archs_out),
                    "candidates": len(cands), **({"rule_asked": rule} if used != rule else {})})
        return 0
    from spaces import create_space

    q = shlex.quote  # commands to paste into a shell: a path with a space or a quote stays one word
    db = "" if args.db == DEFAULT_DB else f" --db {q(str(args.db))}"
    listing = q(str(args.archs_out))
    profile = f"edgeprof profile {q(args.device)} --space {pred.space} --archs {listing}{db}"
    config = pred.space_obj().config
    if config != create_space(pred.space).config:
        profile += f" --space-config {q(json.dumps(config))}"
    adapt = (f"edgeprof adapt {q(str(args.predictor))} --device {q(args.device)} --archs {listing} "
             f"--out ADAPTED{db}")
    if have_refs:
        err.print(f"proposed {len(picks)} of {len(cands)} unmeasured archs to measure on {args.device} (rule {used}): "
                  f"{args.archs_out}")
    else:
        missing = sum(r not in table for r in refs)
        fell_back = f" ({rule} needs the references)" if used != rule else ""
        err.print(f"{args.device}: {missing} of the {len(refs)} reference latencies are not in the store, so "
                  f"{args.archs_out} lists the {len(refs)} reference archs first, then {len(picks)} picks by the "
                  f"device-free rule {used}{fell_back}")
    err.print(f"measure them: {profile}")
    err.print(f"then adapt: {adapt}")
    return 0


def adapt_accuracy(args: argparse.Namespace, pred: Any) -> int:
    """maml-acc: K pairs of the task drawn (seeded) from the store's figures, scored on all the others."""
    from predictors.data import load_accuracy
    from predictors.evaluation import accuracy_summary_line, expected_line, held_out
    from predictors.hardware_adaptive import draw_support
    from predictors.io import read_train_archs, save_predictor
    from predictors.uncertainty import expected_error, shown

    given = given_options(args, "device", settings=True)
    if given:
        raise UserInputError(f"{', '.join(given)}: {args.predictor} is a maml-acc accuracy predictor, adapted to a "
                             "task with --task, not to a device")
    if not args.task:
        raise UserInputError(f"--task is required: the accuracy task to adapt the maml-acc predictor "
                             f"{args.predictor} to (e.g. --task cifar100)")
    card = pred.card_
    metric = args.metric or card.get("metric") or "test_accuracy"
    source = args.source if args.source is not None else card.get("source")
    with Store(args.db, readonly=True) as store:
        ids, y = load_accuracy(store, pred.space, args.task, metric, source)
    seen: set[str] = set()
    if args.task in pred.meta_tasks_:  # meta-trained on this task: adapt and score on archs it never saw
        seen = read_train_archs(args.predictor)
    keep = [i for i, a in enumerate(ids) if a not in seen]
    where = f"task {args.task}" + (f" (without the {len(seen)} archs meta-training saw)" if seen else "")
    support, support_y, _, rest, rest_y = draw_support([ids[i] for i in keep], y[keep], [], args.samples,
                                                       args.seed, where)
    # maml-acc adapts on >= 2 pairs, so leaving one out needs 3
    # (and log residuals need positive figures: a 0% network among the pairs leaves it out)
    expected = expected_error(pred, support, support_y) if len(support) >= 3 and min(support_y) > 0 else None
    pred.adapt(support, support_y)
    metrics, _, _ = held_out(pred, rest, rest_y, (), f"task {args.task}", n_target_samples=args.samples,
                             positive=False)
    out = Path(args.out)
    save_predictor(pred, out, metrics=metrics, quantity="accuracy", train_archs=[*support, *seen], task=args.task,
                   metric=metric, source=source, expected_error=expected)
    if args.json:
        print_json({"task": args.task, "metric": metric, "source": source, "out": str(out),
                    "samples": args.samples, "meta_tasks": pred.meta_tasks_, "metrics": metrics,
                    "expected_error": shown(expected)})
    else:
        err.print(f"adapted to {args.task} ({metric}) with {args.samples} pairs: {accuracy_summary_line(metrics)}")
        if expected is not None:
            err.print(expected_line(expected, metrics, "accuracy"))
        err.print(f"saved {out}")
    return 0
