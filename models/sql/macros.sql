-- SQL macros the hub's models share. TEMP so that they exist on read-only connections too;
-- hub.warehouse.connect() runs this file on every connection.

-- GB 11643 check character (ISO 7064 MOD 11-2) of a 17-digit body.
CREATE OR REPLACE TEMP MACRO id_check_char(b) AS
    substr('10X98765432', (((ascii(substr(b, 1, 1)) - 48) * 7 + (ascii(substr(b, 2, 1)) - 48) * 9 + (ascii(substr(b, 3, 1)) - 48) * 10 + (ascii(substr(b, 4, 1)) - 48) * 5 + (ascii(substr(b, 5, 1)) - 48) * 8 + (ascii(substr(b, 6, 1)) - 48) * 4 + (ascii(substr(b, 7, 1)) - 48) * 2 + (ascii(substr(b, 8, 1)) - 48) * 1 + (ascii(substr(b, 9, 1)) - 48) * 6 + (ascii(substr(b, 10, 1)) - 48) * 3 + (ascii(substr(b, 11, 1)) - 48) * 7 + (ascii(substr(b, 12, 1)) - 48) * 9 + (ascii(substr(b, 13, 1)) - 48) * 10 + (ascii(substr(b, 14, 1)) - 48) * 5 + (ascii(substr(b, 15, 1)) - 48) * 8 + (ascii(substr(b, 16, 1)) - 48) * 4 + (ascii(substr(b, 17, 1)) - 48) * 2) % 11) + 1, 1);

-- Trim, drop inner white space, full-width digits/X to ASCII, upper-case x.
CREATE OR REPLACE TEMP MACRO id_clean(s) AS
    nullif(upper(regexp_replace(translate(s, '０１２３４５６７８９ｘＸ　', '0123456789xX '), '\s', '', 'g')), '');

-- Legacy 15-digit numbers: insert 19 before the year and compute the check character.
CREATE OR REPLACE TEMP MACRO id_upgrade15(s) AS
    CASE WHEN regexp_full_match(s, '[0-9]{15}')
         THEN substr(s, 1, 6) || '19' || substr(s, 7, 9) || id_check_char(substr(s, 1, 6) || '19' || substr(s, 7, 9))
         ELSE s END;

CREATE OR REPLACE TEMP MACRO id_normalize(s) AS id_upgrade15(id_clean(s));

CREATE OR REPLACE TEMP MACRO id_birth_date(s) AS
    CAST(try_strptime(substr(s, 7, 8), '%Y%m%d') AS DATE);

CREATE OR REPLACE TEMP MACRO id_is_valid(s) AS
    coalesce(regexp_full_match(s, '[0-9]{17}[0-9X]')
             AND id_birth_date(s) IS NOT NULL
             AND id_check_char(substr(s, 1, 17)) = substr(s, 18, 1), false);

-- GB/T 2261.1 code from the 17th digit: odd = 1 male, even = 2 female.
CREATE OR REPLACE TEMP MACRO id_gender(s) AS
    CASE WHEN (ascii(substr(s, 17, 1)) - 48) % 2 = 1 THEN '1' ELSE '2' END;

-- 450102199901011234 -> 450102************ ; 13812345678 -> 138****5678
-- An ID keeps only its area code (GB/T 2260, the first 6 characters, also published as birth_area_code):
-- birth date, sequence and check character stay hidden, so the mask does not narrow the number down.
CREATE OR REPLACE TEMP MACRO mask_id(s) AS
    CASE WHEN s IS NULL THEN NULL ELSE substr(s, 1, 6) || repeat('*', greatest(length(s) - 6, 0)) END;
-- 1997-05-01 -> '1995-1999': what datasets below restricted publish instead of the year of birth.
CREATE OR REPLACE TEMP MACRO birth_cohort(d) AS
    CASE WHEN d IS NULL THEN NULL
         ELSE CAST(year(d) // 5 * 5 AS VARCHAR) || '-' || CAST(year(d) // 5 * 5 + 4 AS VARCHAR) END;
CREATE OR REPLACE TEMP MACRO mask_phone(s) AS
    CASE WHEN s IS NULL THEN NULL ELSE substr(s, 1, 3) || '****' || substr(s, -4) END;

-- Names: full-width ASCII and the ideographic space to half-width, every middle-dot variant to U+00B7,
-- spaces between CJK characters removed (two passes: RE2 has no look-ahead), other runs of white space collapsed to one.
CREATE OR REPLACE TEMP MACRO name_clean(s) AS
    nullif(trim(regexp_replace(
        regexp_replace(regexp_replace(translate(translate(s, '・•‧∙．', '·····'), '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～　', '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`abcdefghijklmnopqrstuvwxyz{|}~ '),
            '([\p{Han}·])\s+([\p{Han}·])', '\1\2', 'g'),
            '([\p{Han}·])\s+([\p{Han}·])', '\1\2', 'g'),
        '\s+', ' ', 'g')), '');

-- Dates in every shape the campus systems use: 2023-09-01, 2023/9/1, 20230901, 2023.09.01, 2024年3月5日,
-- ISO timestamps (the date as written), Excel serial numbers (days since 1899-12-30) and epoch milliseconds;
-- full-width digits read as ASCII. The whole value must be one of these: anything else, a date that does not
-- exist (2024-02-30, 0000-00-00, 20240230) or a year before 1900 (a placeholder) is NULL, which the
-- plausibility checks (quality/plausibility.yaml) report with the value.
CREATE OR REPLACE TEMP MACRO date_text(s) AS
    regexp_replace(translate(trim(s), '０１２３４５６７８９－／．', '0123456789-/.'),
                   '^([0-9]{4})\s*年\s*([0-9]{1,2})\s*月\s*([0-9]{1,2})\s*日$', '\1-\2-\3');
CREATE OR REPLACE TEMP MACRO parse_date_text(t) AS
    CASE
        WHEN t IS NULL OR t = '' THEN NULL
        WHEN regexp_full_match(t, '[0-9]{5}(\.0+)?')
            THEN CAST(DATE '1899-12-30' + CAST(CAST(t AS DOUBLE) AS INTEGER) AS DATE)
        WHEN regexp_full_match(t, '[0-9]{12,13}')
            THEN CAST(timezone('Asia/Shanghai', to_timestamp(CAST(t AS BIGINT) / 1000.0)) AS DATE)
        WHEN regexp_full_match(t, '[0-9]{8}')
            THEN CAST(try_strptime(t, '%Y%m%d') AS DATE)
        WHEN regexp_full_match(t, '[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?)?')
            THEN CAST(try_strptime(regexp_replace(regexp_extract(t, '^[0-9]{4}[-/.][0-9]{1,2}[-/.][0-9]{1,2}'), '[/.]', '-', 'g'),
                                   '%Y-%m-%d') AS DATE)
    END;
CREATE OR REPLACE TEMP MACRO parse_date_any(s) AS
    CASE WHEN year(parse_date_text(date_text(s))) >= 1900 THEN parse_date_text(date_text(s)) END;

-- Mobile numbers: digits only, a leading 86 country code dropped; NULL unless it is a mainland mobile.
CREATE OR REPLACE TEMP MACRO phone_clean(s) AS
    CASE WHEN regexp_full_match(regexp_replace(regexp_replace(coalesce(s, ''), '[^0-9]', '', 'g'), '^86(1[3-9][0-9]{9})$', '\1'), '1[3-9][0-9]{9}')
         THEN regexp_replace(regexp_replace(s, '[^0-9]', '', 'g'), '^86(1[3-9][0-9]{9})$', '\1') END;

-- The quality.reconciliation_issue row (a struct: INSERT ... BY NAME SELECT unnest(...)) a fact writes for a record
-- it keeps out because it names a person or a party organisation that does not exist (warehouse.known_person,
-- warehouse.known_org). what: the record and the field as the detail names them ('dues payment for 人员编号');
-- entity and field: the source entity and field the value came from; bad_value: the value as sent.
CREATE OR REPLACE TEMP MACRO orphan_person(model, systems, record_key, what, entity, field, bad_value) AS {
    'kind': 'orphan_reference', 'person_key': NULL::VARCHAR, 'systems': systems, 'record_key': record_key,
    'detail': what || ' ' || bad_value || ', which neither HR nor the student system holds',
    'values': json_object('entity', entity, 'field', field, 'value', bad_value, 'references', 'hr.staff|student.students'),
    'model': model};
CREATE OR REPLACE TEMP MACRO orphan_org(model, systems, record_key, person_key, what, entity, field, bad_value) AS {
    'kind': 'orphan_reference', 'person_key': person_key, 'systems': systems, 'record_key': record_key,
    'detail': what || ' ' || bad_value || ', which is not a party organisation',
    'values': json_object('entity', entity, 'field', field, 'value', bad_value, 'references', 'party.orgs'),
    'model': model};
