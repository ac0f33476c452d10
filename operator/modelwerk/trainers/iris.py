"""Reference trainer: logistic regression on iris data.

The data is the run's dataset named ``iris`` when its URI is not ``sklearn://`` (a CSV or
Parquet file or folder with the four features under their sanitized names and ``target`` as the
class name: ``modelwerk.trainers.tables``), otherwise scikit-learn's bundled 150 flowers.

``python -m modelwerk.trainers.iris`` inside a TrainingRun's container (or locally with the
``MODELWERK_*`` variables of ``modelwerk.sdk`` set). Hyperparameters: ``C`` (inverse
regularisation, default 1.0) and ``max_iter`` (default 200). The seed drives both the
train/test split and the solver, so a rerun with the same spec yields the same artifact digest.

Writes ``<output dir>/model.joblib`` and reports ``accuracy`` and ``f1_macro`` on the held-out
20 %, with the training features' mean/std as the drift baseline.

In a distributed run (``spec.workers``) the workers first meet (``modelwerk.rendezvous``); worker
0 then trains and reports, the others have nothing to add to a model this small and end.
"""

from __future__ import annotations

import sys
from typing import Final

from modelwerk import sdk
from modelwerk.rendezvous import RendezvousError, rendezvous
from modelwerk.report import sanitize_identifier
from modelwerk.trainers import tables

ARTIFACT_NAME: Final = "model.joblib"
DATASET: Final = "iris"
"""The dataset the trainer reads; any other the run names is for validation or lineage only."""
BUNDLED: Final = "sklearn://"
TEST_FRACTION: Final = 0.2


def main() -> int:
    try:
        world = rendezvous()
        if world.size > 1:
            print(f"iris trainer: worker {world.rank} of {world.size}: all joined", file=sys.stderr)
        if world.rank != 0:
            return 0
        return _train()
    except (sdk.SdkError, sdk.ReportError, RendezvousError) as err:
        print(f"iris trainer: {err}", file=sys.stderr)
        return 2


def _train() -> int:
    # Imported here so that `--help`-style failures and SDK errors don't pay for sklearn.
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import train_test_split

    run = sdk.params()
    c = sdk.hyperparameter("C", 1.0)
    max_iter = sdk.hyperparameter("max_iter", 200)
    seed = sdk.seed(default=0)
    if c <= 0 or max_iter <= 0:
        raise sdk.SdkError(f"C and max_iter must be positive, got C={c}, max_iter={max_iter}")
    bundled = load_iris()
    features = [sanitize_identifier(f) for f in bundled.feature_names]
    x, y = bundled.data, bundled.target
    named = next((d for d in run.datasets if d.name == DATASET), None)
    if named is not None and not named.uri.startswith(BUNDLED):
        x, y = tables.read(named.uri, features, list(bundled.target_names))
        print(f"iris trainer: {len(y)} rows from {named.uri}", file=sys.stderr)
    elif ignored := [d.name for d in run.datasets if d is not named]:
        print(f"iris trainer: ignoring datasets {ignored} (reads `{DATASET}`)", file=sys.stderr)

    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=seed, stratify=y
    )
    model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    model.fit(x_train, y_train)
    predicted = model.predict(x_test)

    artifact = sdk.output_dir() / ARTIFACT_NAME
    joblib.dump(model, artifact)
    sdk.report(
        metrics={
            "accuracy": float(accuracy_score(y_test, predicted)),
            "f1_macro": float(f1_score(y_test, predicted, average="macro")),
        },
        artifact=artifact,
        baseline=sdk.baseline_from_matrix(x_train, features),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
