"""The letter record: every column name the pipeline uses, and the aliases offices export.

This module is the one place column names live. Stages import the constants below
instead of spelling column names as string literals.
"""

# --- Schema columns (what `petition ingest` produces) -----------------------------------
LETTER_ID = "letter_id"
RECEIVED_AT = "received_at"
CHANNEL = "channel"
PETITIONER_NAME = "petitioner_name"
PETITIONER_ID_NUMBER = "petitioner_id_number"
PETITIONER_PHONE = "petitioner_phone"
ADDRESS = "address"
ADDRESSEE = "addressee"
ADDRESSEE_LEVEL = "addressee_level"
TITLE = "title"
CONTENT = "content"
SIGNATORIES = "signatories"
VISITORS = "visitors"

SCHEMA_COLUMNS = (
    LETTER_ID, RECEIVED_AT, CHANNEL, PETITIONER_NAME, PETITIONER_ID_NUMBER,
    PETITIONER_PHONE, ADDRESS, ADDRESSEE, ADDRESSEE_LEVEL, TITLE, CONTENT,
    SIGNATORIES, VISITORS,
)
TEXT_COLUMNS = (TITLE, CONTENT)          # at least one must be non-empty
INTEGER_COLUMNS = (SIGNATORIES, VISITORS)
PETITIONER_COLUMNS = (PETITIONER_NAME, PETITIONER_ID_NUMBER, PETITIONER_PHONE, ADDRESS)

# --- Handling columns (optional; ingest adds them, '' / NaT when the export has none) -----
# Kept apart from SCHEMA_COLUMNS: a letter's hash id and its identity do not change when its
# status does (a later dump re-exports the same letter with a new status).
HANDLING_BODY = "handling_body"          # 责任单位 / 承办单位: the body the item was 交办/转办 to
STATUS = "status"                        # one of STATUSES; an unknown value is kept as written
CLOSED_AT = "closed_at"                  # 办结日期
REPLY = "reply"                          # 答复意见
REPLIED_AT = "replied_at"                # 答复时间
SATISFACTION = "satisfaction"            # 满意度 / 评价, as written
HANDLING_COLUMNS = (HANDLING_BODY, STATUS, CLOSED_AT, REPLY, REPLIED_AT, SATISFACTION)
HANDLING_DATES = (CLOSED_AT, REPLIED_AT)
ACCEPTED, IN_PROGRESS, ANSWERED, CLOSED, NOT_ACCEPTED = STATUSES = (
    "accepted", "in_progress", "answered", "closed", "not_accepted")

# --- Provenance columns added by ingest --------------------------------------------------
SOURCE_FILE = "source_file"
SOURCE_ROW = "source_row"        # 1-based data row (header excluded) in the source file
EXTRA = "extra"                  # JSON of source columns the schema does not know

# --- Columns added by normalize ----------------------------------------------------------
ORIGINAL_TEXT = "original_text"  # title + content as received
CLEAN_TEXT = "clean_text"        # clean(title) + "\n" + clean(content), identifiers masked
PETITIONER_KEY = "petitioner_key"
PETITIONER_KEY_BASIS = "petitioner_key_basis"  # id / phone / name_address / name / none
WAS_TRADITIONAL = "was_traditional"
MASKED_NAMES = "masked_names"    # keyed hashes ("张:<hex>", "|"-joined) of the names masked that dedupe counts

# --- Columns added by segment ------------------------------------------------------------
TOKENS = "tokens"                # space-joined jieba words, stopwords removed

# --- Columns added by classify ------------------------------------------------------------
TOPIC = "topic"                          # most probable topic code
TOPIC_CONFIDENCE = "topic_confidence"    # its calibrated probability
TOPICS = "topics"                        # "|"-joined codes of every topic above its threshold
TOP3 = "top3"                            # JSON list of [code, probability], best first
NEEDS_REVIEW = "needs_review"            # confidence under the model card's review threshold
RESPONSIBLE_BODY = "responsible_body"
NATURE = "nature"                        # 申诉 / 举报控告 / 求决 / 咨询 / 意见建议
LAW_LITIGATION = "law_litigation"        # 涉法涉诉
ANONYMOUS = "anonymous"
JOINT = "joint"                          # 联名信
SIGNATORY_COUNT = "signatory_count"      # from the signatories column, else counted in the text
COLLECTIVE = "collective"                # 集体访: visitors >= 5
HOME_LEVEL = "home_level"                # level of the place the matter belongs to
SKIP_LEVEL = "skip_level"                # 越级: addressee level above the home level

# --- Columns added by dedupe ---------------------------------------------------------------
CASE_ID = "case_id"                      # one matter (纯件); every letter has one
DUPLICATE_OF = "duplicate_of"            # earliest linked letter of the case ('' for the first)
RELATION = "relation"                    # relation to duplicate_of (see RELATIONS)
REOPENED = "reopened"                    # 回流: every earlier letter of its case was closed before it arrived
EXACT_COPY, MULTI_ADDRESSED, RESEND, REPEAT_PETITION, SAME_MATTER = RELATIONS = (
    "exact_copy", "multi_addressed", "resend", "repeat_petition", "same_matter")
DECIDED_SAME = "decided_same"            # relation of a letter only a `same` decision joins to duplicate_of
# pairs the dedupe index keeps beside the links (never in links.csv): their P builds the cases
POSSIBLE = "possible"                    # a candidate pair with P from dedupe.possible_probability, under the link threshold
IN_CASE = "in_case"                      # a pair scored because the links put its letters in one component
                                         # (not in RELATIONS: no link is found or written for it)

LETTER, VISIT, PHONE, ONLINE, MAILBOX = CHANNELS = ("letter", "visit", "phone", "online", "mailbox")
LEVELS = ("township", "county", "city", "province", "national")

# --- Columns letters.prepare derives for counting (in memory, never written) -------------
PERSONS = "_persons"                     # head count of a visit (at least 1)
TOPIC_LIST = "_topics"                   # the letter's topic codes as a list

# --- links.csv: one row per pair of linked letters --------------------------------------
LETTER_A = "letter_a"
LETTER_B = "letter_b"
LINK_SCORE = "score"                         # P(same matter), the match model's
SHARED_NAMES = "shared_names"                # specific names both letters hold ("、"-joined)
CHAR_SIMILARITY = "char_similarity"
TFIDF_COSINE = "tfidf_cosine"
DAYS_APART = "days_apart"
SAME_PETITIONER = "same_petitioner"
LINK_COLUMNS = (LETTER_A, LETTER_B, RELATION, LINK_SCORE, SHARED_NAMES, CHAR_SIMILARITY,
                TFIDF_COSINE, DAYS_APART, SAME_PETITIONER)

# --- the dedupe index's letters.parquet (besides letter id, date, addressee, petitioner, topics)
BODY_HASH = "body_hash"                      # 64-bit hash of the comparison text
PLACES = "places"                            # "|"-joined specific names (the ones counted)
OTHERS = "others"                            # "|"-joined masked people and organisation terms

# --- cases.csv: one row per case holding a letter of the run ----------------------------
CASE_LABEL = "label"                         # a short name of the case (see dedup.cases.case_labels)
CASE_LETTER_IDS = "letter_ids"
CASE_FIRST_DATE = "first_date"
CASE_LAST_DATE = "last_date"
CASE_LETTERS = "letters"
CASE_PETITIONERS = "petitioners"
CASE_ADDRESSEES = "addressees"
CASE_TOPICS = "topics"
CASE_RUN_LETTERS = "run_letters"
CASE_STATUS = "status"
CASE_NEW, CASE_CONTINUES, CASE_REOPENED = CASE_STATUSES = ("new", "continues", "reopened")
CASE_COLUMNS = (CASE_ID, CASE_LABEL, CASE_LETTER_IDS, CASE_FIRST_DATE, CASE_LAST_DATE, CASE_LETTERS,
                CASE_PETITIONERS, CASE_ADDRESSEES, CASE_TOPICS, CASE_RUN_LETTERS, CASE_STATUS)

# --- archive/status.parquet: each letter's handling, a row when first indexed and on each change
STATUS_RECORDED_AT = "recorded_at"           # when the dump that gave it was deduped (ISO time)
STATUS_RUN = "run"                           # the run directory's name
# a letter's title (masked) is kept on its first row: the clerk's sheet lists earlier letters by it
STATUS_HISTORY_COLUMNS = (LETTER_ID, STATUS_RECORDED_AT, STATUS_RUN, TITLE, *HANDLING_COLUMNS, REOPENED)

# --- Quarantine / warning files ----------------------------------------------------------
STAGE = "stage"
COLUMN = "column"
REASON = "reason"
RAW = "raw"
VALUE = "value"
PROBLEM = "problem"
QUARANTINE_COLUMNS = (STAGE, SOURCE_FILE, SOURCE_ROW, COLUMN, REASON, RAW)
TEXT_COLUMNS_NAME = "/".join(TEXT_COLUMNS)  # the quarantine's COLUMN of a letter without text
WARNING_COLUMNS = (STAGE, SOURCE_FILE, SOURCE_ROW, LETTER_ID, COLUMN, VALUE, PROBLEM)

# --- manifest.json: what was done in a run directory -------------------------------------
MANIFEST_STAGES = "stages"                 # {stage: StageResult fields + finished_at}
MANIFEST_FINISHED_AT = "finished_at"
MANIFEST_VERSIONS = "versions"             # {package: version} of the last writer
MANIFEST_INPUTS = "inputs"                 # ingest's files: [{path, sha256}]
MANIFEST_INPUT_PATH = "path"
MANIFEST_INPUT_SHA256 = "sha256"
MANIFEST_DUMP_FINGERPRINT = "dump_fingerprint"  # nightly: hash of the dump's files

# --- decisions.sqlite: analyst decisions, one row each, never changed (pipeline.decisions) --
# Besides LETTER_A, LETTER_B (the letters; B only for a pair) and VALUE (a topic's "|"-joined codes).
DECISION_ID = "id"
DECISION_KIND = "kind"
DECISION_USER = "user"
DECISION_AT = "at"                         # ISO time with its UTC offset
DECISION_NOTE = "note"
DECISION_UNDOES = "undoes"                 # an undo's target decision id
DECISION_SAME, DECISION_DIFFERENT, DECISION_DETACH, DECISION_TOPIC, DECISION_UNDO = DECISION_KINDS = (
    "same", "different", "detach", "topic", "undo")

# Aliases, matched after stripping spaces and lower-casing. Chinese headers are those of
# office registers and of the provincial message-board export in ../shared.
ALIASES = {
    LETTER_ID: ["letter_id", "id", "留言编号", "信件编号", "编号", "登记编号", "信访件编号", "件号"],
    RECEIVED_AT: ["received_at", "date", "留言时间", "来信日期", "登记日期", "来访日期",
                  "日期", "受理日期", "登记时间"],
    CHANNEL: ["channel", "信访形式", "信访方式", "渠道", "来源"],
    PETITIONER_NAME: ["petitioner_name", "name", "留言用户", "信访人", "姓名", "来信人",
                      "反映人", "信访人姓名"],
    PETITIONER_ID_NUMBER: ["petitioner_id_number", "id_number", "身份证号", "身份证号码",
                           "证件号码"],
    PETITIONER_PHONE: ["petitioner_phone", "phone", "联系电话", "电话", "手机", "手机号码"],
    ADDRESS: ["address", "住址", "地址", "家庭住址", "通讯地址"],
    ADDRESSEE: ["addressee", "受理机关", "受理单位", "收信单位", "来信对象"],
    ADDRESSEE_LEVEL: ["addressee_level", "受理机关级别", "受理层级"],
    TITLE: ["title", "subject", "留言主题", "标题", "主题", "事由"],
    CONTENT: ["content", "text", "body", "留言详情", "内容", "正文", "主要诉求", "信访内容",
              "诉求内容"],
    SIGNATORIES: ["signatories", "联名人数"],
    VISITORS: ["visitors", "来访人数"],
    HANDLING_BODY: ["handling_body", "responsible_unit", "责任单位", "交办单位", "承办单位", "办理单位",
                    "转办单位"],
    STATUS: ["status", "办理状态", "处理状态", "状态", "办理情况"],
    CLOSED_AT: ["closed_at", "closed", "办结日期", "办结时间", "结案日期"],
    REPLY: ["reply", "答复意见", "回复意见", "答复内容", "回复内容"],
    REPLIED_AT: ["replied_at", "reply_date", "答复时间", "回复时间", "答复日期", "回复日期"],
    SATISFACTION: ["satisfaction", "满意度", "评价", "满意度评价"],
}


def alias_map():
    """Return {normalised header: schema column} for every alias in ``ALIASES``."""
    return {_header_key(alias): column for column, names in ALIASES.items() for alias in names}


def _header_key(header):
    return "".join(str(header).split()).lstrip("\ufeff").lower()


def map_columns(headers):
    """Map source headers to schema columns.

    Parameters
    ----------
    headers : iterable of str
        Column names as they appear in the source file.

    Returns
    -------
    mapping : dict
        {source header: schema column} for recognised headers. When two source headers
        map to one column (e.g. 内容 and 正文) the first one wins.
    unmapped : list of str
        Source headers the schema does not know; ingest keeps them in ``extra``.
    """
    aliases = alias_map()
    mapping, unmapped, taken = {}, [], set()
    for header in headers:
        column = aliases.get(_header_key(header))
        if column is None or column in taken:
            unmapped.append(header)
        else:
            mapping[header] = column
            taken.add(column)
    return mapping, unmapped
