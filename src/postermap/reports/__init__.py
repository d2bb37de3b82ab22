"""Reports a person reads to check the pipeline's judgement: clean verdicts, clusters and
grid distortion. Each module writes under ``WORKSPACE/report/``; all contact sheets come
from :func:`postermap.reports.sheets.contact_sheet`."""
