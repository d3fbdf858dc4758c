"""Host side of measurement: device configs, transports, job bundles and the dataset store."""
