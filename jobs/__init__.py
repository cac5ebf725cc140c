"""Build side: overlay specs, Jenkins job generation and the steps the generated jobs run."""
