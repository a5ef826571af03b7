"""Training and evaluation of any forecast model: the Forecaster (LightningModule), its
scheduled-sampling policy, checkpoints and the test table."""
