"""MLflow side of the serving benchmark: the same servable saved as an MLflow pyfunc model.

    benchmarks/.venv-mlflow/bin/python benchmarks/peers/serving_mlflow.py SERVABLE_DIR OUT_DIR
    benchmarks/.venv-mlflow/bin/mlflow models serve -m OUT_DIR --env-manager local -h 127.0.0.1 -p 5001

The pyfunc's predict takes the request's DataFrame, turns it into Arrow and calls the
servable (transform + torch model), exactly the work the other servers do per batch.
"""

from __future__ import annotations

import sys

import mlflow.pyfunc


class SluicePyfunc(mlflow.pyfunc.PythonModel):
    """Wraps a Sluice servable directory as an MLflow model."""

    def load_context(self, context):  # noqa: ANN001
        from sluice.registry.servable import Servable

        self.servable = Servable.load(context.artifacts["servable"])

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        import pandas as pd
        import pyarrow as pa

        inputs = self.servable.signature.inputs
        columns = {}
        for name, spec in inputs.items():
            values = model_input[name].tolist() if name in model_input else [None] * len(model_input)
            values = [None if v is None or (isinstance(v, float) and v != v) else v for v in values]
            kind = {"float": pa.float64(), "int": pa.int64(), "string": pa.string(), "bool": pa.bool_()}[spec["type"]]
            columns[name] = pa.array(values, type=kind)
        out = self.servable.predict(pa.table(columns))
        return pd.DataFrame({"probability": out["probability"]})


if __name__ == "__main__":
    servable_dir, out_dir = sys.argv[1], sys.argv[2]
    mlflow.pyfunc.save_model(out_dir, python_model=SluicePyfunc(), artifacts={"servable": servable_dir})
    print(out_dir)
