"""Build corpora/taxonomy.yaml from a board's three-level table of the national petition content
classification and corpora/taxonomy_sources.yaml.

Usage: python scripts/national_taxonomy.py PATH/taxonomy_3level.xlsx [--sources FILE] [--out FILE]
"""
import argparse
import sys

import yaml

from pipeline.classifier.national import national_taxonomy, write_taxonomy
from pipeline.classifier.taxonomy import Taxonomy
from pipeline.config import PROJECT_ROOT
from pipeline.errors import PetitionError
from pipeline.intake import readers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="taxonomy_3level.xlsx (一级分类, 二级分类, 三级分类), or CSV")
    parser.add_argument("--sources", default=PROJECT_ROOT / "corpora" / "taxonomy_sources.yaml")
    parser.add_argument("--out", default=PROJECT_ROOT / "corpora" / "taxonomy.yaml")
    args = parser.parse_args(argv)
    try:
        sources = yaml.safe_load(open(args.sources, encoding="utf-8"))
        taxonomy = national_taxonomy(readers.read_table(args.table).frame, sources, source_name=args.table)
        write_taxonomy(taxonomy, args.out)
        loaded = Taxonomy.load(args.out)  # what every command will read
    except PetitionError as exc:
        print(f"national_taxonomy: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: {len(loaded.level1())} first-level and "
          f"{len(loaded.topics) - len(loaded.level1())} second-level classes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
