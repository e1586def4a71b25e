"""Framework pieces that know nothing about contact centers."""
