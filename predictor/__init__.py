"""The kit's KServe predictor: token tensors in, logits out, from a Hugging Face classifier."""
