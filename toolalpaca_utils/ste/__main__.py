"""`python -m toolalpaca_utils.ste --profile NAME [--key value ...]`: notebook 06_ste, headless,
with the profile's parameters and the flags (see `--help`: toolalpaca_utils/params.py)."""
from toolalpaca_utils.book.run import run_stage

if __name__ == "__main__":
    raise SystemExit(run_stage("06_ste"))
