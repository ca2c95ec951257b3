"""Issue 26 part 2: the ``draft`` kind of ``specsim validate`` on traces/validation/draft/ --
each capture predicted from every other capture of the same draft kind and another size
(``--vary draft.n`` / ``draft.layers``), as README's validation table rows.

    python tests/bench/validate_draft.py [--dir traces/validation/draft]   (~1 min)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "bench"))

GROUPS = {"chat / layerskip 4, 8, 12": "chat_layerskip_*", "chat / ngram 2, 4": "chat_ngram_*",
          "edit / ngram 1, 2, 4": "edit_ngram_*"}


def main() -> int:
    from record_validation import TABLE_HEAD, table_row

    from analysis.validate import validate

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dir", default=str(ROOT / "traces" / "validation" / "draft"))
    args = p.parse_args()
    folder = Path(args.dir)
    print(TABLE_HEAD)
    for label, pattern in GROUPS.items():
        paths = sorted(str(x) for x in folder.glob(pattern + ".jsonl"))
        report = validate(paths)
        name = pattern.rstrip("_*")
        (folder / f"validate_{name}.json").write_text(json.dumps(report, indent=1, default=str))
        for kind, stats in report["summary"].items():
            print(table_row(f"{label}: {kind}", stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
