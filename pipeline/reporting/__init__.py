"""The reporting wing: what turns prepared letters into the office report.

``periods`` picks the calendar period and its comparison periods, ``figures`` counts every
number once as plain data with stable English keys, ``tables`` lays the figures out as the
tables with Chinese headings, ``narrative`` writes the Chinese summary from the figures,
``render`` writes report.xlsx, report.html and report.md (``charts`` draws the HTML's SVG
bar charts, ``fonts`` names the CJK fonts that HTML and matplotlib charts use). The stage
``pipeline.report`` calls it; letters come from ``pipeline.letters``.
"""
