"""Links: a code, a destination and UTM parameters, for one affiliate in one program."""
