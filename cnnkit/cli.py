"""The ``cnnkit`` command.

    cnnkit exercises [--check] [--root DIR]   regenerate student notebooks and solutions pages
    cnnkit prove [SLUG ...] [--root DIR]      prove every question: solution full, student zero, wrong cells fail
    cnnkit grade SUBMISSION.ipynb [...]       grade a submission (same as python -m cnnkit.grade)
"""
from __future__ import annotations

import argparse
import sys
import time


def _exercises(args: argparse.Namespace) -> int:
    from .exercises import find_root, stale_files, write_all
    root = find_root(args.root)
    if args.check:
        stale = stale_files(root)
        for path in stale:
            print(f"out of date: {path.relative_to(root)}")
        print("run `cnnkit exercises` to regenerate" if stale else "generated exercise files are up to date")
        return 1 if stale else 0
    changed = write_all(root)
    for path in changed:
        print(f"wrote {path.relative_to(root)}")
    print(f"{len(changed)} file(s) changed" if changed else "nothing to do: everything is up to date")
    return 0


def _prove(args: argparse.Namespace) -> int:
    from .exercises import find_root, format_proofs, prove, read_sources
    root = find_root(args.root)
    failed = 0
    for source in read_sources(root, args.slugs or None):
        start = time.perf_counter()
        proofs = prove(source)
        print(format_proofs(proofs))
        print(f"{source.slug}: {sum(p.ok for p in proofs)}/{len(proofs)} proofs hold "
              f"({time.perf_counter() - start:.1f} s)")
        failed += sum(not p.ok for p in proofs)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["grade"]:
        from .grade import main as grade_main
        return grade_main(argv[1:])
    parser = argparse.ArgumentParser(prog="cnnkit", description="Hands-On CNNs course tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    ex = sub.add_parser("exercises", help="regenerate student notebooks and solutions pages from the sources")
    ex.add_argument("--check", action="store_true", help="only report out-of-date files (exit 1 if any)")
    ex.add_argument("--root", help="repository root (default: found from the current folder)")
    pr = sub.add_parser("prove", help="run the grader proofs and print a summary per question")
    pr.add_argument("slugs", nargs="*", help="exercises to prove, e.g. 01_convolution (default: all)")
    pr.add_argument("--root", help="repository root (default: found from the current folder)")
    sub.add_parser("grade", help="grade a submitted notebook: cnnkit grade SUBMISSION.ipynb [--json PATH]",
                   add_help=False)
    args = parser.parse_args(argv)
    try:
        return {"exercises": _exercises, "prove": _prove}[args.command](args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
