"""The offline side: the online service's answers for files, and the measures of a model.

One module per step, read top to bottom as a run goes:
    batch.py, settings.py   the batch command, its flags and what they parse into
    flags.py                the flags every in-process command shares (no server flags)
    rows.py, parquet.py     input rows: JSONL and CSV, Parquet row groups
    stores.py               where files live: local paths, s3:// gs:// az:// through fsspec
    shards.py               --shard K/N, row-group ranges and the manifest of the parts
    scoring.py              tokenize, forward, decide: the online code path, in-process
    local_run.py            a local JSONL/CSV run, appended and checkpointed
    parts_run.py            a run as parts: Parquet, object stores, shards
    progress.py, faults.py  what a run says on stderr; the crash hook of the restart tests
    labelled.py             labelled texts for the commands that measure a model
    calibrate.py            the calibration command (the fitting is kserve_kit.calibration)
    calibration_report.py   its report, plots and outputs
    compare.py              champion against challenger on labelled texts: the promotion gate

Above the servers' floor: it imports `predictor` (the runtime) and `kserve_kit`, and neither
imports it.
"""
