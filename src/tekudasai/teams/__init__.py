"""Teams of agents and how new tickets are assigned within them."""
