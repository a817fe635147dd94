"""Real answers held to what `/openapi.json` declares for their operation."""

import jsonschema_rs


class Contract:
    """Validate real answers against the document, remembering which operations it saw."""

    def __init__(self, document):
        self.document = document
        self.seen = set()

    def check(self, method, path, response):
        """Assert `response` is a declared success of the operation, shaped as declared."""
        assert response.status_code < 300, (method, path, response.status_code, response.data)
        return self.answer(method, path, response)

    def answer(self, method, path, response):
        """Assert `response` is an answer the operation declares: its status, its media
        type and, for JSON, its shape. Return the JSON, if any."""
        answers = self.document["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in answers, (method, path, status)
        self.seen.add((method, path))
        content = answers[status].get("content")
        if content is None:
            if 300 <= response.status_code < 400 and response.status_code != 304:
                assert response.headers.get("Location"), (method, path, status)
            else:  # 204, 304: nothing follows
                assert response.data == b"", (method, path, status)
            return None
        assert response.mimetype in content, (method, path, status, response.mimetype)
        if response.mimetype != "application/json":
            return None
        schema = content["application/json"]["schema"]
        validator = jsonschema_rs.validator_for(
            {**schema, "components": self.document["components"]}, validate_formats=True
        )
        errors = [
            f"{'/'.join(map(str, error.instance_path))}: {error.message}"
            for error in validator.iter_errors(response.json)
        ]
        assert errors == [], f"{method.upper()} {path}: {errors}"
        return response.json

    def answered(self, method, path, response):
        """`answer`, returning the response itself for the test to read on."""
        self.answer(method, path, response)
        return response
