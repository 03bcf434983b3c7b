"""Whether a run already on disk can stand for the run reproduce.py is about to make: the same configuration,
seed and code. Pure decisions over metrics.json records; reproduction/runs.py runs the processes.

    from reproduction.reuse import decide, verify
    decision = decide(record, wanted, digest, machine)  # Decision("reuse" | "verify" | "train", why)
    decision = verify(record, first_epoch, digest)     # first_epoch(): the run's first epoch again, fresh record

A record's ``code`` is common/provenance.py's digest of the code that trained it. A record without ``code``
(older than this), or with another digest, is checked by its numbers: the first epoch is trained again with the
same flags and compared bit for bit (FIRST_EPOCH); if identical, the run is reused and its record gains the
digest in ``code_verified``, so the next call trusts it without checking.
"""

from dataclasses import dataclass

# The hyperparameter and data flags a record's config must match (descriptive strings such as architecture or
# split_batches may be reworded and are not compared). A key the script has no flag for is not compared.
COMPARED = ("epochs", "lr", "batch_size", "seed", "limit_train", "dtype", "device", "optimizer", "momentum",
            "init", "shuffle", "permute_pixels", "eval_train", "layers")
ABSENT = {"layers": "fast", "shuffle": "epoch"}  # what a record made before the flag existed ran with
# Per-epoch fields that do not depend on the run's total epoch count: the whole training set is evaluated
# after the last epoch only (--eval-train last), which a 1-epoch run does after epoch 1 and a longer run does
# not; that adds train_loss/train_acc to the entry but changes none of these.
FIRST_EPOCH = ("test_loss", "test_acc", "train_loss_running", "order_digest")
REUSE, VERIFY, TRAIN = "reuse", "verify", "train"


@dataclass(frozen=True)
class Decision:
    action: str   # REUSE, VERIFY (check the first epoch), TRAIN
    why: str


# --- the decision ------------------------------------------------------------------------------------------

def config_changes(recorded, wanted):
    """['lr 0.1 -> 0.01', ...] for the COMPARED keys of ``wanted`` (the config this call would run) that the
    record's config does not match; a key missing from the record counts as ABSENT says."""
    changes = []
    for key in COMPARED:
        if key in wanted and recorded.get(key, ABSENT.get(key)) != wanted[key]:
            changes.append(f"{key} {recorded.get(key, ABSENT.get(key))!r} -> {wanted[key]!r}")
    return changes


def decide(record, wanted, digest, machine=None):
    """What to do about the run a record (None: no record on disk) stands for, given the config this call would
    run and the code's digest now. ``machine`` (machine_id()): a run is then reused unchecked only when it was
    trained, or its first epoch checked, on this machine with this code; None: the machine is not asked."""
    if record is None:
        return Decision(TRAIN, "no run on disk")
    if record.get("interrupted") or not record.get("history") or not record.get("final"):
        return Decision(TRAIN, "the run on disk did not finish")
    changes = config_changes(record.get("config", {}), wanted)
    if changes:
        return Decision(TRAIN, "its configuration differs: " + ", ".join(changes))
    if machine is not None:
        if record.get("code") == digest and record.get("machine") == machine:
            return Decision(REUSE, "same configuration, seed, code and machine")
        if f"{digest}@{machine}" in record.get("code_verified", []):
            return Decision(REUSE, "same configuration and seed; its first epoch matched this code on this "
                                   "machine before")
        if record.get("code") == digest:
            return Decision(VERIFY, "same code, but trained on another machine (or before machines were "
                                    "recorded): another CPU may round differently")
    elif record.get("code") == digest:
        return Decision(REUSE, "same configuration, seed and code")
    elif digest in record.get("code_verified", []):
        return Decision(REUSE, "same configuration and seed; its first epoch matched this code before")
    if record.get("code") is None:  # no field, or an evaluation of a checkpoint saved before digests
        return Decision(VERIFY, "recorded before code digests")
    return Decision(VERIFY, "the code changed since")


def first_epoch_differences(recorded, fresh):
    """The FIRST_EPOCH fields in which two records' first epochs differ (exact comparison, as JSON gives them)."""
    a, b = recorded["history"][0], fresh["history"][0]
    return [key for key in FIRST_EPOCH if key not in a or a.get(key) != b.get(key)]


def verify(record, first_epoch, digest):
    """Decide a VERIFY: ``first_epoch()`` trains the first epoch again with the run's flags and returns its
    record (None if it failed). Identical -> REUSE (mark the record with mark_verified), else TRAIN."""
    fresh = first_epoch()
    if fresh is None:
        return Decision(TRAIN, "the first-epoch check did not run")
    differs = first_epoch_differences(record, fresh)
    if differs:
        return Decision(TRAIN, "its first epoch differs under this code (" + ", ".join(differs) + ")")
    return Decision(REUSE, "its first epoch matched bit for bit")


def mark_verified(record, digest):
    """The record with ``digest`` (for reproduce.py: "digest@machine") added to code_verified (a copy; nothing
    else changes)."""
    verified = [d for d in record.get("code_verified", []) if d != digest]
    return {**record, "code_verified": [*verified, digest]}
