"""The code sandbox: user Python/JavaScript in a separate, limited, isolated process."""
