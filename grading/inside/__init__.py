"""What runs inside the sandbox beside a student's code: NumPy alone, no verdicts (see grading/runner.py)."""
