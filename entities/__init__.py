"""Protocol entities of the draft (bMAG, PLMA, NLMA, policy store) as state machines."""
