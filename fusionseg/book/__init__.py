"""The book: `build` executes the chapters (papermill) and renders them (Jupyter Book); `notebook`
holds what the chapters share (setup, tables beside the paper's numbers, figures)."""
