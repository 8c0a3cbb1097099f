"""One recipe per figure of the papers: read cached results, compute what is missing, draw PNG + CSV."""
