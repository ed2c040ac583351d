-- ---
-- description: Online learning study records, one row per record_id; minutes, progress and quiz score as numbers, epoch-ms times parsed, user_no is the 学号/工号.
-- source: learning.study_records
-- key: [record_id]
-- required: [user_no, course_id]
-- updated_at: updated_at
-- columns:
--   record_id: The platform's study record id.
--   person_no: user_no: the learner's 学号/工号.
--   course_id: The course studied.
--   started_at: When study began (from epoch milliseconds).
--   started_on: Beijing calendar date study began.
--   last_active_at: Last activity instant.
--   last_active_on: Beijing calendar date of the last activity.
--   minutes: Minutes studied.
--   progress: Progress through the course, 0-100.
--   quiz_score: Quiz score, NULL when no quiz was taken.
--   completed: Whether the platform marks the course completed.
--   load_id: The raw load (raw zone load_id) this row's current version came from.
-- ---
-- Epoch milliseconds become instants (started_at) and Beijing calendar dates (started_on, via
-- parse_date_any). progress and quiz_score are 0-100; quiz_score is blank when there was no quiz.
WITH v AS (
    SELECT c.*,
           count(DISTINCT hash(c.user_no, c.course_id, c.started_at, c.last_active_at, c.minutes, c.progress, c.quiz_score, c.completed))
               OVER (PARTITION BY c.record_id)          AS _versions,
           CASE WHEN regexp_full_match(trim(c.started_at), '[0-9]{12,13}')
                THEN to_timestamp(CAST(trim(c.started_at) AS BIGINT) / 1000.0) END     AS _started,
           CASE WHEN regexp_full_match(trim(c.last_active_at), '[0-9]{12,13}')
                THEN to_timestamp(CAST(trim(c.last_active_at) AS BIGINT) / 1000.0) END AS _last_active,
           try_cast(trim(c.minutes) AS DOUBLE)                                     AS _minutes,
           try_cast(trim(c.progress) AS DOUBLE)                                    AS _progress,
           try_cast(trim(c.quiz_score) AS DOUBLE)                                  AS _quiz,
           try_cast(lower(trim(c.completed)) AS BOOLEAN)                           AS _completed
    FROM current c
)
SELECT
    trim(v.record_id)                              AS record_id,
    trim(v.user_no)                                AS person_no,
    trim(v.course_id)                              AS course_id,
    v._started                                     AS started_at,
    parse_date_any(v.started_at)                   AS started_on,
    v._last_active                                 AS last_active_at,
    parse_date_any(v.last_active_at)               AS last_active_on,
    v._minutes                                     AS minutes,
    v._progress                                    AS progress,
    v._quiz                                        AS quiz_score,
    v._completed                                   AS completed,
    v._load_id                                     AS load_id,
    v._row_number                                  AS _row_number,
    CASE
        WHEN v._versions > 1 THEN 'conflicting_duplicate'
        WHEN v._duplicate THEN 'duplicate_row'
        WHEN v._started IS NULL THEN 'unparseable_value'
        WHEN v._last_active IS NULL AND nullif(trim(v.last_active_at), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._minutes IS NULL AND nullif(trim(v.minutes), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._progress IS NULL AND nullif(trim(v.progress), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._quiz IS NULL AND nullif(trim(v.quiz_score), '') IS NOT NULL THEN 'unparseable_value'
        WHEN v._completed IS NULL AND nullif(trim(v.completed), '') IS NOT NULL THEN 'unparseable_value'
    END                                            AS _reject_rule,
    CASE
        WHEN v._versions > 1 THEN 'record_id ' || v.record_id || ' has ' || v._versions || ' different rows in load ' || v._load_id
        WHEN v._duplicate THEN 'record_id ' || v.record_id || ' appears more than once in load ' || v._load_id
        WHEN v._started IS NULL THEN 'started_at ''' || coalesce(v.started_at, 'NULL') || ''' is not epoch milliseconds'
        WHEN v._last_active IS NULL AND nullif(trim(v.last_active_at), '') IS NOT NULL
            THEN 'last_active_at ''' || v.last_active_at || ''' is not epoch milliseconds'
        WHEN v._minutes IS NULL AND nullif(trim(v.minutes), '') IS NOT NULL THEN 'minutes ''' || v.minutes || ''' is not a number'
        WHEN v._progress IS NULL AND nullif(trim(v.progress), '') IS NOT NULL THEN 'progress ''' || v.progress || ''' is not a number'
        WHEN v._quiz IS NULL AND nullif(trim(v.quiz_score), '') IS NOT NULL THEN 'quiz_score ''' || v.quiz_score || ''' is not a number'
        ELSE 'completed ''' || v.completed || ''' is not true/false'
    END                                            AS _reject_detail,
    v.record_id                                    AS _record_key
FROM v
