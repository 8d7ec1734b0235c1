"""Wire codec for the LMA handover messages of draft-lim-netext-lma-handover-01."""
