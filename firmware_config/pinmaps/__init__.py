"""Pin maps per node role (<role>.yaml): button and LED names -> BCM GPIO numbers, per hardware revision."""
