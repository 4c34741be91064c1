"""The method: options, recipes (paper, official presets, ablations), video scores, labelling rules, diagnostics. No file I/O, no torch."""
