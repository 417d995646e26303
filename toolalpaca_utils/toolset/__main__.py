"""`python -m toolalpaca_utils.toolset --profile NAME [--key value ...]`: notebook 01_toolset, headless,
with the profile's parameters and the flags (see `--help`: toolalpaca_utils/params.py)."""
from toolalpaca_utils.book.run import run_stage

if __name__ == "__main__":
    raise SystemExit(run_stage("01_toolset"))
