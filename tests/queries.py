"""Count the SQL statements an engine runs, for tests that bound them."""


class QueryCounter:
    """A `before_cursor_execute` listener that keeps every statement it sees."""

    def __init__(self):
        self.statements = []

    def __call__(self, conn, cursor, statement, *args):
        self.statements.append(statement)

    @property
    def count(self):
        return len(self.statements)
