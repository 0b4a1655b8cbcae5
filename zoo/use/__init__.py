"""What trained weights are for: predictions on raw input (predict), exports (export), model cards
(card), re-measured scores (verify) and activation statistics (inspect)."""
