"""The outbox: releasing a send into a row, delivering rows, recording outcomes."""
