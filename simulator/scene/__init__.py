"""The scene of one capture: random streams, damage drawing, placement on the tray, physics settling, randomization draws."""
