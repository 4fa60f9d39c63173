"""The dataset on disk: writers, the run manifest, WebDataset shards, the one reader, validation and exports."""
