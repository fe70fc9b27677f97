"""What a person sees: the live progress board, study plots, the HTML report."""
