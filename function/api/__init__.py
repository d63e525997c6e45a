"""The API of function-model-rollout: models, field types and the schemas generated from them."""
