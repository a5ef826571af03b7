"""Station and satellite data: the xarray contract, readers, the synthetic world, windows, scalers, datamodule."""
