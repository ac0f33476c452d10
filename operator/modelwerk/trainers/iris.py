"""Reference trainer: logistic regression on scikit-learn's bundled iris data.

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

ARTIFACT_NAME: Final = "model.joblib"
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
    if run.datasets:
        print(
            "iris trainer: uses scikit-learn's bundled iris data; "
            f"ignoring datasets {[d.name for d in run.datasets]}",
            file=sys.stderr,
        )

    data = load_iris()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=TEST_FRACTION, random_state=seed, stratify=data.target
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
        baseline=sdk.baseline_from_matrix(x_train, data.feature_names),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
