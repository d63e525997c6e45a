"""An example serving platform for the development cluster (scripts/cluster.sh)."""
