"""Operations the CLI runs: functions that return results; the CLI prints them."""
