"""Toward a faithful feed-forward encoder (issue 17): ablations on the bundled DCGAN, scored on a held-out train slice."""
