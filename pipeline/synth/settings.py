"""The generated county's vocabulary and rates: what the generator writes, and how often.

These describe the imitated office register and its letters, not the pipeline, so they
live here and not in the pipeline's configuration. Indexes (``LETTER``, ``ORIGINAL``,
``TOWNSHIP``, ...) are the integer codes the plan stores; the tuples map them to the text
written out.
"""
import datetime as dt

# --- Vocabulary of the output -----------------------------------------------------------
# The register's own Chinese headers (the generator imitates an office export; ingest maps
# them through schema.ALIASES).
HEADERS = ("信件编号", "来信日期", "信访形式", "信访人", "身份证号", "联系电话", "住址",
           "受理机关", "受理层级", "标题", "内容", "联名人数", "来访人数")
TRUTH_LETTER_COLUMNS = ("letter_id", "topics", "nature", "matter_id", "person_id", "anonymous",
                        "signatories", "visitors", "traditional", "identifiers_in_text",
                        "home_level", "skip_level", "pattern", "malformed")
TRUTH_PAIR_COLUMNS = ("letter_a", "letter_b", "relation")
CHANNELS = ("来信", "来访", "来电", "网上信访", "领导信箱")
LETTER, VISIT, PHONE, ONLINE, MAILBOX = range(5)
NATURES = ("申诉", "举报控告", "求决", "咨询", "意见建议")
SOFT_NATURES = ("咨询", "意见建议")  # not complaints: nobody campaigns with them
PATTERNS = ("original", "exact_copy", "multi_addressed", "resend", "repeat_petition", "same_matter")
ORIGINAL, EXACT, MULTI, RESEND, REPEAT, SAME = range(6)
RELATIONS = ("exact_copy", "multi_addressed", "resend", "repeat_petition", "same_matter")
MALFORMED = ("", "empty_text", "bad_date", "unknown_channel", "duplicate_id")
TOWNSHIP, COUNTY, CITY = 0, 1, 2   # indexes into schema.LEVELS
VILLAGE, ESTATE, ELSEWHERE = range(3)

# --- Rates (behaviour, not wording) -----------------------------------------------------
FIRST_DAY = dt.date(2024, 1, 1)
N_DAYS = 731                                   # 2024-01-01 .. 2025-12-31
CHANNEL_WEIGHTS = (35, 15, 8, 35, 7)           # 来信 来访 来电 网上信访 领导信箱
LEVEL_WEIGHTS = {                              # township county city province national
    LETTER: (18, 62, 12, 6, 2), VISIT: (15, 70, 10, 4, 1), PHONE: (0, 85, 15, 0, 0),
    ONLINE: (14, 60, 16, 7, 3), MAILBOX: (0, 72, 25, 3, 0),
}
P_SAME_MATTER = 0.035      # a matter is raised by 2-4 petitioners ...
P_CAMPAIGN = 0.006         # ... or by an organised group of 5-15
P_REPEAT = 0.105           # a named complainant writes again on the matter (1-3 times)
P_ESCALATE = 0.4           # each repeat goes one level higher with this chance
P_MULTI, P_EXACT, P_RESEND = 0.06, 0.03, 0.025
P_REUSE_PERSON = 0.03      # long-term petitioners (老户) with several matters
P_TWO_TOPICS = 0.12        # for topics that have partner topics
P_PEAK_MONTH = 0.35        # a topic's new matter falls in one of its peak months
P_MALFORMED = 0.005
P_TRADITIONAL = 0.03
P_IDS_IN_TEXT = 0.07
P_COLLECTIVE_VISIT = 0.06  # a visit with 5+ people even without an organised group
QUIRK_RATES = {"decimal": 0.2,        # of letters; only those with a decimal number change
               "fullwidth": 0.04, "halfwidth": 0.05, "break": 0.04, "mojibake": 0.003,
               "boilerplate": 0.04,    # online messages only
               "html": 0.15}           # online and mailbox; other channels an eighth of it
BODY_MIN, BODY_CAP = 80, 1400  # composed bodies stay inside; edits and quirks add < 100
FILLERS = (6, 450, 45)         # generic sentences: 6, plus one per 45 chars of target over 450
MULTI_SECTIONS = ("facts", "asks", "suggests", "timeline", "more", "more_ask")
SECONDARY_SECTIONS = ("timeline", "more", "more_ask")   # grow only after the topic's own
CHUNK = 20_000                 # letters rendered and written at a time
