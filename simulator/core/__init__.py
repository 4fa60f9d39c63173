"""Foundation every layer uses: user-facing errors, asset paths, YAML checks, frame and unit conventions, seed derivation."""
