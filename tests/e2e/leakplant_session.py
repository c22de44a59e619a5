"""Not collected by the suite (the name is not test_*.py): test_leak_scan.py runs
it in a pytest of its own, on two xdist workers, to show that a leak one worker
finds fails the whole run. LEAKPLANT=1 plants a token in a recorded output;
without it the same tokens stay out of every output (a clean run)."""
import os

import pytest

from support.registry import note_timing, record_output, remember_token

TOKEN = "eyJwbGFudGVk" + "A" * 40 + "." + "B" * 80 + "." + "C" * 86


@pytest.mark.parametrize("n", range(4))
def test_records_an_output(n):
    remember_token(TOKEN)
    shown = TOKEN if os.environ.get("LEAKPLANT") == "1" and n == 3 else "a token was issued"
    record_output(["planted", str(n)], 0, shown, "")
    note_timing(f"planted bound {n}", "measured in a worker")
