"""The experiment runner (``loram bench``) and the results page (``loram report``)."""
