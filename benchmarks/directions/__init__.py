"""Issue 36's measurement tools: an independent Fashion-MNIST classifier and the edit metrics that use it."""
