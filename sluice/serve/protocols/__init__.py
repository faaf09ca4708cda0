"""The wire protocols the server speaks: TF Serving REST, Open Inference (KServe V2), MLflow scoring."""
