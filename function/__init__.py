"""function-model-rollout: roll model-serving deployments without dropping a request."""
