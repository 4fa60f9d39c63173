"""Configuration: YAML files to frozen dataclasses (booth rig, product catalog, materials, damage mix, randomization ranges, sensor models)."""
