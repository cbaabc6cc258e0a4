-- Input another system can write must not reach another enqueuer's imports, nor hold what
-- Cognito would refuse, nor stop the fleet. Rows the older schema let in are put right first: a
-- NOT VALID check is still enforced on every UPDATE of a row, so an active job that broke one
-- would make every claim, lease renewal or rescue that touched it fail.
--
-- The SQL contract is unchanged: an enqueuer's INSERT INTO cognito_reset.jobs (user_pool_id,
-- username) VALUES (...), with or without RETURNING, and cognito_reset.enqueue_reset(...).

-- The size of a job's client metadata, for its check below (a CHECK cannot hold a subquery).
-- It runs with the privileges of whoever writes the row, so every name in it is qualified: a
-- role that can create objects could otherwise shadow sum() or + on its search_path and pass any
-- size. Anything but an object counts as empty: jobs_client_metadata_string_map refuses it.
CREATE FUNCTION cognito_reset.client_metadata_bytes(metadata jsonb) RETURNS bigint
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT coalesce(pg_catalog.sum(pg_catalog.octet_length(e.key) OPERATOR(pg_catalog.+) pg_catalog.octet_length(e.value)), 0)
    FROM pg_catalog.jsonb_each_text(CASE WHEN pg_catalog.jsonb_typeof(metadata) OPERATOR(pg_catalog.=) 'object'
                                         THEN metadata ELSE '{}' END) AS e
$$;

-- A username's length as Cognito counts it, in UTF-16 code units (a character beyond U+FFFF
-- counts two): char_length counts code points, so 100 emoji passed the old 128-character check
-- while Cognito refuses them. Qualified for the same reason as above.
CREATE FUNCTION cognito_reset.username_utf16_length(username text) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT pg_catalog.char_length(username) OPERATOR(pg_catalog.+)
           pg_catalog.char_length(pg_catalog.regexp_replace(username, E'[^\\U00010000-\\U0010FFFF]', '', 'g'))
$$;

-- Whether a username holds only what Cognito's pattern [\p{L}\p{M}\p{S}\p{N}\p{P}]+ allows
-- (letters, marks, symbols, numbers, punctuation), for its check below. PostgreSQL's regular
-- expressions have no \p{..}: the class lists every other code point (but U+0000 and the
-- surrogates, which text cannot hold), generated from Unicode 17.0 by
-- scripts/gen-username-class.swift, whose header says how to run it. An E'' literal, so it means
-- the same whatever standard_conforming_strings says.
--
-- A function rather than the bare regular expression in the check: a check's expression is
-- rebuilt from its stored form for every statement that writes the table, and this one's
-- constant (10 kB) made every single-row INSERT or UPDATE of a job about 0.15 ms slower. PL/pgSQL
-- keeps the compiled expression for the session. The operator is qualified for the same reason
-- as above.
CREATE FUNCTION cognito_reset.username_characters_allowed(username text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE
AS $$
BEGIN
    RETURN username OPERATOR(pg_catalog.!~)
        E'[\\u0001-\\u0020\\u007F-\\u00A0\\u00AD\\u0378\\u0379\\u0380-\\u0383\\u038B\\u038D\\u03A2'
        '\\u0530\\u0557\\u0558\\u058B\\u058C\\u0590\\u05C8-\\u05CF\\u05EB-\\u05EE\\u05F5-\\u0605'
        '\\u061C\\u06DD\\u070E\\u070F\\u074B\\u074C\\u07B2-\\u07BF\\u07FB\\u07FC\\u082E\\u082F'
        '\\u083F\\u085C\\u085D\\u085F\\u086B-\\u086F\\u0890-\\u0896\\u08E2\\u0984\\u098D\\u098E'
        '\\u0991\\u0992\\u09A9\\u09B1\\u09B3-\\u09B5\\u09BA\\u09BB\\u09C5\\u09C6\\u09C9\\u09CA'
        '\\u09CF-\\u09D6\\u09D8-\\u09DB\\u09DE\\u09E4\\u09E5\\u09FF\\u0A00\\u0A04\\u0A0B-\\u0A0E'
        '\\u0A11\\u0A12\\u0A29\\u0A31\\u0A34\\u0A37\\u0A3A\\u0A3B\\u0A3D\\u0A43-\\u0A46'
        '\\u0A49\\u0A4A\\u0A4E-\\u0A50\\u0A52-\\u0A58\\u0A5D\\u0A5F-\\u0A65\\u0A77-\\u0A80\\u0A84'
        '\\u0A8E\\u0A92\\u0AA9\\u0AB1\\u0AB4\\u0ABA\\u0ABB\\u0AC6\\u0ACA\\u0ACE\\u0ACF'
        '\\u0AD1-\\u0ADF\\u0AE4\\u0AE5\\u0AF2-\\u0AF8\\u0B00\\u0B04\\u0B0D\\u0B0E\\u0B11\\u0B12'
        '\\u0B29\\u0B31\\u0B34\\u0B3A\\u0B3B\\u0B45\\u0B46\\u0B49\\u0B4A\\u0B4E-\\u0B54'
        '\\u0B58-\\u0B5B\\u0B5E\\u0B64\\u0B65\\u0B78-\\u0B81\\u0B84\\u0B8B-\\u0B8D\\u0B91'
        '\\u0B96-\\u0B98\\u0B9B\\u0B9D\\u0BA0-\\u0BA2\\u0BA5-\\u0BA7\\u0BAB-\\u0BAD\\u0BBA-\\u0BBD'
        '\\u0BC3-\\u0BC5\\u0BC9\\u0BCE\\u0BCF\\u0BD1-\\u0BD6\\u0BD8-\\u0BE5\\u0BFB-\\u0BFF\\u0C0D'
        '\\u0C11\\u0C29\\u0C3A\\u0C3B\\u0C45\\u0C49\\u0C4E-\\u0C54\\u0C57\\u0C5B\\u0C5E\\u0C5F'
        '\\u0C64\\u0C65\\u0C70-\\u0C76\\u0C8D\\u0C91\\u0CA9\\u0CB4\\u0CBA\\u0CBB\\u0CC5\\u0CC9'
        '\\u0CCE-\\u0CD4\\u0CD7-\\u0CDB\\u0CDF\\u0CE4\\u0CE5\\u0CF0\\u0CF4-\\u0CFF\\u0D0D\\u0D11'
        '\\u0D45\\u0D49\\u0D50-\\u0D53\\u0D64\\u0D65\\u0D80\\u0D84\\u0D97-\\u0D99\\u0DB2\\u0DBC'
        '\\u0DBE\\u0DBF\\u0DC7-\\u0DC9\\u0DCB-\\u0DCE\\u0DD5\\u0DD7\\u0DE0-\\u0DE5\\u0DF0\\u0DF1'
        '\\u0DF5-\\u0E00\\u0E3B-\\u0E3E\\u0E5C-\\u0E80\\u0E83\\u0E85\\u0E8B\\u0EA4\\u0EA6'
        '\\u0EBE\\u0EBF\\u0EC5\\u0EC7\\u0ECF\\u0EDA\\u0EDB\\u0EE0-\\u0EFF\\u0F48\\u0F6D-\\u0F70'
        '\\u0F98\\u0FBD\\u0FCD\\u0FDB-\\u0FFF\\u10C6\\u10C8-\\u10CC\\u10CE\\u10CF\\u1249'
        '\\u124E\\u124F\\u1257\\u1259\\u125E\\u125F\\u1289\\u128E\\u128F\\u12B1\\u12B6\\u12B7'
        '\\u12BF\\u12C1\\u12C6\\u12C7\\u12D7\\u1311\\u1316\\u1317\\u135B\\u135C\\u137D-\\u137F'
        '\\u139A-\\u139F\\u13F6\\u13F7\\u13FE\\u13FF\\u1680\\u169D-\\u169F\\u16F9-\\u16FF'
        '\\u1716-\\u171E\\u1737-\\u173F\\u1754-\\u175F\\u176D\\u1771\\u1774-\\u177F\\u17DE\\u17DF'
        '\\u17EA-\\u17EF\\u17FA-\\u17FF\\u180E\\u181A-\\u181F\\u1879-\\u187F\\u18AB-\\u18AF'
        '\\u18F6-\\u18FF\\u191F\\u192C-\\u192F\\u193C-\\u193F\\u1941-\\u1943\\u196E\\u196F'
        '\\u1975-\\u197F\\u19AC-\\u19AF\\u19CA-\\u19CF\\u19DB-\\u19DD\\u1A1C\\u1A1D\\u1A5F'
        '\\u1A7D\\u1A7E\\u1A8A-\\u1A8F\\u1A9A-\\u1A9F\\u1AAE\\u1AAF\\u1ADE\\u1ADF\\u1AEC-\\u1AFF'
        '\\u1B4D\\u1BF4-\\u1BFB\\u1C38-\\u1C3A\\u1C4A-\\u1C4C\\u1C8B-\\u1C8F\\u1CBB\\u1CBC'
        '\\u1CC8-\\u1CCF\\u1CFB-\\u1CFF\\u1F16\\u1F17\\u1F1E\\u1F1F\\u1F46\\u1F47\\u1F4E\\u1F4F'
        '\\u1F58\\u1F5A\\u1F5C\\u1F5E\\u1F7E\\u1F7F\\u1FB5\\u1FC5\\u1FD4\\u1FD5\\u1FDC'
        '\\u1FF0\\u1FF1\\u1FF5\\u1FFF-\\u200F\\u2028-\\u202F\\u205F-\\u206F\\u2072\\u2073\\u208F'
        '\\u209D-\\u209F\\u20C2-\\u20CF\\u20F1-\\u20FF\\u218C-\\u218F\\u242A-\\u243F'
        '\\u244B-\\u245F\\u2B74\\u2B75\\u2CF4-\\u2CF8\\u2D26\\u2D28-\\u2D2C\\u2D2E\\u2D2F'
        '\\u2D68-\\u2D6E\\u2D71-\\u2D7E\\u2D97-\\u2D9F\\u2DA7\\u2DAF\\u2DB7\\u2DBF\\u2DC7\\u2DCF'
        '\\u2DD7\\u2DDF\\u2E5E-\\u2E7F\\u2E9A\\u2EF4-\\u2EFF\\u2FD6-\\u2FEF\\u3000\\u3040'
        '\\u3097\\u3098\\u3100-\\u3104\\u3130\\u318F\\u31E6-\\u31EE\\u321F\\uA48D-\\uA48F'
        '\\uA4C7-\\uA4CF\\uA62C-\\uA63F\\uA6F8-\\uA6FF\\uA7DD-\\uA7F0\\uA82D-\\uA82F'
        '\\uA83A-\\uA83F\\uA878-\\uA87F\\uA8C6-\\uA8CD\\uA8DA-\\uA8DF\\uA954-\\uA95E'
        '\\uA97D-\\uA97F\\uA9CE\\uA9DA-\\uA9DD\\uA9FF\\uAA37-\\uAA3F\\uAA4E\\uAA4F\\uAA5A\\uAA5B'
        '\\uAAC3-\\uAADA\\uAAF7-\\uAB00\\uAB07\\uAB08\\uAB0F\\uAB10\\uAB17-\\uAB1F\\uAB27\\uAB2F'
        '\\uAB6C-\\uAB6F\\uABEE\\uABEF\\uABFA-\\uABFF\\uD7A4-\\uD7AF\\uD7C7-\\uD7CA\\uD7FC-\\uD7FF'
        '\\uE000-\\uF8FF\\uFA6E\\uFA6F\\uFADA-\\uFAFF\\uFB07-\\uFB12\\uFB18-\\uFB1C\\uFB37\\uFB3D'
        '\\uFB3F\\uFB42\\uFB45\\uFDD0-\\uFDEF\\uFE1A-\\uFE1F\\uFE53\\uFE67\\uFE6C-\\uFE6F\\uFE75'
        '\\uFEFD-\\uFF00\\uFFBF-\\uFFC1\\uFFC8\\uFFC9\\uFFD0\\uFFD1\\uFFD8\\uFFD9\\uFFDD-\\uFFDF'
        '\\uFFE7\\uFFEF-\\uFFFB\\uFFFE\\uFFFF\\U0001000C\\U00010027\\U0001003B\\U0001003E'
        '\\U0001004E\\U0001004F\\U0001005E-\\U0001007F\\U000100FB-\\U000100FF'
        '\\U00010103-\\U00010106\\U00010134-\\U00010136\\U0001018F\\U0001019D-\\U0001019F'
        '\\U000101A1-\\U000101CF\\U000101FE-\\U0001027F\\U0001029D-\\U0001029F'
        '\\U000102D1-\\U000102DF\\U000102FC-\\U000102FF\\U00010324-\\U0001032C'
        '\\U0001034B-\\U0001034F\\U0001037B-\\U0001037F\\U0001039E\\U000103C4-\\U000103C7'
        '\\U000103D6-\\U000103FF\\U0001049E\\U0001049F\\U000104AA-\\U000104AF'
        '\\U000104D4-\\U000104D7\\U000104FC-\\U000104FF\\U00010528-\\U0001052F'
        '\\U00010564-\\U0001056E\\U0001057B\\U0001058B\\U00010593\\U00010596\\U000105A2\\U000105B2'
        '\\U000105BA\\U000105BD-\\U000105BF\\U000105F4-\\U000105FF\\U00010737-\\U0001073F'
        '\\U00010756-\\U0001075F\\U00010768-\\U0001077F\\U00010786\\U000107B1'
        '\\U000107BB-\\U000107FF\\U00010806\\U00010807\\U00010809\\U00010836'
        '\\U00010839-\\U0001083B\\U0001083D\\U0001083E\\U00010856\\U0001089F-\\U000108A6'
        '\\U000108B0-\\U000108DF\\U000108F3\\U000108F6-\\U000108FA\\U0001091C-\\U0001091E'
        '\\U0001093A-\\U0001093E\\U0001095A-\\U0001097F\\U000109B8-\\U000109BB'
        '\\U000109D0\\U000109D1\\U00010A04\\U00010A07-\\U00010A0B\\U00010A14\\U00010A18'
        '\\U00010A36\\U00010A37\\U00010A3B-\\U00010A3E\\U00010A49-\\U00010A4F'
        '\\U00010A59-\\U00010A5F\\U00010AA0-\\U00010ABF\\U00010AE7-\\U00010AEA'
        '\\U00010AF7-\\U00010AFF\\U00010B36-\\U00010B38\\U00010B56\\U00010B57'
        '\\U00010B73-\\U00010B77\\U00010B92-\\U00010B98\\U00010B9D-\\U00010BA8'
        '\\U00010BB0-\\U00010BFF\\U00010C49-\\U00010C7F\\U00010CB3-\\U00010CBF'
        '\\U00010CF3-\\U00010CF9\\U00010D28-\\U00010D2F\\U00010D3A-\\U00010D3F'
        '\\U00010D66-\\U00010D68\\U00010D86-\\U00010D8D\\U00010D90-\\U00010E5F\\U00010E7F'
        '\\U00010EAA\\U00010EAE\\U00010EAF\\U00010EB2-\\U00010EC1\\U00010EC8-\\U00010ECF'
        '\\U00010ED9-\\U00010EF9\\U00010F28-\\U00010F2F\\U00010F5A-\\U00010F6F'
        '\\U00010F8A-\\U00010FAF\\U00010FCC-\\U00010FDF\\U00010FF7-\\U00010FFF'
        '\\U0001104E-\\U00011051\\U00011076-\\U0001107E\\U000110BD\\U000110C3-\\U000110CF'
        '\\U000110E9-\\U000110EF\\U000110FA-\\U000110FF\\U00011135\\U00011148-\\U0001114F'
        '\\U00011177-\\U0001117F\\U000111E0\\U000111F5-\\U000111FF\\U00011212'
        '\\U00011242-\\U0001127F\\U00011287\\U00011289\\U0001128E\\U0001129E'
        '\\U000112AA-\\U000112AF\\U000112EB-\\U000112EF\\U000112FA-\\U000112FF\\U00011304'
        '\\U0001130D\\U0001130E\\U00011311\\U00011312\\U00011329\\U00011331\\U00011334\\U0001133A'
        '\\U00011345\\U00011346\\U00011349\\U0001134A\\U0001134E\\U0001134F\\U00011351-\\U00011356'
        '\\U00011358-\\U0001135C\\U00011364\\U00011365\\U0001136D-\\U0001136F'
        '\\U00011375-\\U0001137F\\U0001138A\\U0001138C\\U0001138D\\U0001138F\\U000113B6\\U000113C1'
        '\\U000113C3\\U000113C4\\U000113C6\\U000113CB\\U000113D6\\U000113D9-\\U000113E0'
        '\\U000113E3-\\U000113FF\\U0001145C\\U00011462-\\U0001147F\\U000114C8-\\U000114CF'
        '\\U000114DA-\\U0001157F\\U000115B6\\U000115B7\\U000115DE-\\U000115FF'
        '\\U00011645-\\U0001164F\\U0001165A-\\U0001165F\\U0001166D-\\U0001167F'
        '\\U000116BA-\\U000116BF\\U000116CA-\\U000116CF\\U000116E4-\\U000116FF'
        '\\U0001171B\\U0001171C\\U0001172C-\\U0001172F\\U00011747-\\U000117FF'
        '\\U0001183C-\\U0001189F\\U000118F3-\\U000118FE\\U00011907\\U00011908'
        '\\U0001190A\\U0001190B\\U00011914\\U00011917\\U00011936\\U00011939\\U0001193A'
        '\\U00011947-\\U0001194F\\U0001195A-\\U0001199F\\U000119A8\\U000119A9'
        '\\U000119D8\\U000119D9\\U000119E5-\\U000119FF\\U00011A48-\\U00011A4F'
        '\\U00011AA3-\\U00011AAF\\U00011AF9-\\U00011AFF\\U00011B0A-\\U00011B5F'
        '\\U00011B68-\\U00011BBF\\U00011BE2-\\U00011BEF\\U00011BFA-\\U00011BFF\\U00011C09'
        '\\U00011C37\\U00011C46-\\U00011C4F\\U00011C6D-\\U00011C6F\\U00011C90\\U00011C91'
        '\\U00011CA8\\U00011CB7-\\U00011CFF\\U00011D07\\U00011D0A\\U00011D37-\\U00011D39'
        '\\U00011D3B\\U00011D3E\\U00011D48-\\U00011D4F\\U00011D5A-\\U00011D5F\\U00011D66'
        '\\U00011D69\\U00011D8F\\U00011D92\\U00011D99-\\U00011D9F\\U00011DAA-\\U00011DAF'
        '\\U00011DDC-\\U00011DDF\\U00011DEA-\\U00011EDF\\U00011EF9-\\U00011EFF\\U00011F11'
        '\\U00011F3B-\\U00011F3D\\U00011F5B-\\U00011FAF\\U00011FB1-\\U00011FBF'
        '\\U00011FF2-\\U00011FFE\\U0001239A-\\U000123FF\\U0001246F\\U00012475-\\U0001247F'
        '\\U00012544-\\U00012F8F\\U00012FF3-\\U00012FFF\\U00013430-\\U0001343F'
        '\\U00013456-\\U0001345F\\U000143FB-\\U000143FF\\U00014647-\\U000160FF'
        '\\U0001613A-\\U000167FF\\U00016A39-\\U00016A3F\\U00016A5F\\U00016A6A-\\U00016A6D'
        '\\U00016ABF\\U00016ACA-\\U00016ACF\\U00016AEE\\U00016AEF\\U00016AF6-\\U00016AFF'
        '\\U00016B46-\\U00016B4F\\U00016B5A\\U00016B62\\U00016B78-\\U00016B7C'
        '\\U00016B90-\\U00016D3F\\U00016D7A-\\U00016E3F\\U00016E9B-\\U00016E9F'
        '\\U00016EB9\\U00016EBA\\U00016ED4-\\U00016EFF\\U00016F4B-\\U00016F4E'
        '\\U00016F88-\\U00016F8E\\U00016FA0-\\U00016FDF\\U00016FE5-\\U00016FEF'
        '\\U00016FF7-\\U00016FFF\\U00018CD6-\\U00018CFE\\U00018D1F-\\U00018D7F'
        '\\U00018DF3-\\U0001AFEF\\U0001AFF4\\U0001AFFC\\U0001AFFF\\U0001B123-\\U0001B131'
        '\\U0001B133-\\U0001B14F\\U0001B153\\U0001B154\\U0001B156-\\U0001B163'
        '\\U0001B168-\\U0001B16F\\U0001B2FC-\\U0001BBFF\\U0001BC6B-\\U0001BC6F'
        '\\U0001BC7D-\\U0001BC7F\\U0001BC89-\\U0001BC8F\\U0001BC9A\\U0001BC9B'
        '\\U0001BCA0-\\U0001CBFF\\U0001CCFD-\\U0001CCFF\\U0001CEB4-\\U0001CEB9'
        '\\U0001CED1-\\U0001CEDF\\U0001CEF1-\\U0001CEFF\\U0001CF2E\\U0001CF2F'
        '\\U0001CF47-\\U0001CF4F\\U0001CFC4-\\U0001CFFF\\U0001D0F6-\\U0001D0FF'
        '\\U0001D127\\U0001D128\\U0001D173-\\U0001D17A\\U0001D1EB-\\U0001D1FF'
        '\\U0001D246-\\U0001D2BF\\U0001D2D4-\\U0001D2DF\\U0001D2F4-\\U0001D2FF'
        '\\U0001D357-\\U0001D35F\\U0001D379-\\U0001D3FF\\U0001D455\\U0001D49D'
        '\\U0001D4A0\\U0001D4A1\\U0001D4A3\\U0001D4A4\\U0001D4A7\\U0001D4A8\\U0001D4AD\\U0001D4BA'
        '\\U0001D4BC\\U0001D4C4\\U0001D506\\U0001D50B\\U0001D50C\\U0001D515\\U0001D51D\\U0001D53A'
        '\\U0001D53F\\U0001D545\\U0001D547-\\U0001D549\\U0001D551\\U0001D6A6\\U0001D6A7'
        '\\U0001D7CC\\U0001D7CD\\U0001DA8C-\\U0001DA9A\\U0001DAA0\\U0001DAB0-\\U0001DEFF'
        '\\U0001DF1F-\\U0001DF24\\U0001DF2B-\\U0001DFFF\\U0001E007\\U0001E019\\U0001E01A'
        '\\U0001E022\\U0001E025\\U0001E02B-\\U0001E02F\\U0001E06E-\\U0001E08E'
        '\\U0001E090-\\U0001E0FF\\U0001E12D-\\U0001E12F\\U0001E13E\\U0001E13F'
        '\\U0001E14A-\\U0001E14D\\U0001E150-\\U0001E28F\\U0001E2AF-\\U0001E2BF'
        '\\U0001E2FA-\\U0001E2FE\\U0001E300-\\U0001E4CF\\U0001E4FA-\\U0001E5CF'
        '\\U0001E5FB-\\U0001E5FE\\U0001E600-\\U0001E6BF\\U0001E6DF\\U0001E6F6-\\U0001E6FD'
        '\\U0001E700-\\U0001E7DF\\U0001E7E7\\U0001E7EC\\U0001E7EF\\U0001E7FF\\U0001E8C5\\U0001E8C6'
        '\\U0001E8D7-\\U0001E8FF\\U0001E94C-\\U0001E94F\\U0001E95A-\\U0001E95D'
        '\\U0001E960-\\U0001EC70\\U0001ECB5-\\U0001ED00\\U0001ED3E-\\U0001EDFF\\U0001EE04'
        '\\U0001EE20\\U0001EE23\\U0001EE25\\U0001EE26\\U0001EE28\\U0001EE33\\U0001EE38\\U0001EE3A'
        '\\U0001EE3C-\\U0001EE41\\U0001EE43-\\U0001EE46\\U0001EE48\\U0001EE4A\\U0001EE4C'
        '\\U0001EE50\\U0001EE53\\U0001EE55\\U0001EE56\\U0001EE58\\U0001EE5A\\U0001EE5C\\U0001EE5E'
        '\\U0001EE60\\U0001EE63\\U0001EE65\\U0001EE66\\U0001EE6B\\U0001EE73\\U0001EE78\\U0001EE7D'
        '\\U0001EE7F\\U0001EE8A\\U0001EE9C-\\U0001EEA0\\U0001EEA4\\U0001EEAA'
        '\\U0001EEBC-\\U0001EEEF\\U0001EEF2-\\U0001EFFF\\U0001F02C-\\U0001F02F'
        '\\U0001F094-\\U0001F09F\\U0001F0AF\\U0001F0B0\\U0001F0C0\\U0001F0D0'
        '\\U0001F0F6-\\U0001F0FF\\U0001F1AE-\\U0001F1E5\\U0001F203-\\U0001F20F'
        '\\U0001F23C-\\U0001F23F\\U0001F249-\\U0001F24F\\U0001F252-\\U0001F25F'
        '\\U0001F266-\\U0001F2FF\\U0001F6D9-\\U0001F6DB\\U0001F6ED-\\U0001F6EF'
        '\\U0001F6FD-\\U0001F6FF\\U0001F7DA-\\U0001F7DF\\U0001F7EC-\\U0001F7EF'
        '\\U0001F7F1-\\U0001F7FF\\U0001F80C-\\U0001F80F\\U0001F848-\\U0001F84F'
        '\\U0001F85A-\\U0001F85F\\U0001F888-\\U0001F88F\\U0001F8AE\\U0001F8AF'
        '\\U0001F8BC-\\U0001F8BF\\U0001F8C2-\\U0001F8CF\\U0001F8D9-\\U0001F8FF'
        '\\U0001FA58-\\U0001FA5F\\U0001FA6E\\U0001FA6F\\U0001FA7D-\\U0001FA7F'
        '\\U0001FA8B-\\U0001FA8D\\U0001FAC7\\U0001FAC9-\\U0001FACC\\U0001FADD\\U0001FADE'
        '\\U0001FAEB-\\U0001FAEE\\U0001FAF9-\\U0001FAFF\\U0001FB93\\U0001FBFB-\\U0001FFFF'
        '\\U0002A6E0-\\U0002A6FF\\U0002B81E\\U0002B81F\\U0002CEAE\\U0002CEAF'
        '\\U0002EBE1-\\U0002EBEF\\U0002EE5E-\\U0002F7FF\\U0002FA1E-\\U0002FFFF'
        '\\U0003134B-\\U0003134F\\U0003347A-\\U000E00FF\\U000E01F0-\\U0010FFFF]';
END
$$;

-- Whoever inserts or updates a job needs both (PostgreSQL checks EXECUTE when a check is set up,
-- whatever the row holds): the enqueuer inserts, the worker updates. 0001's REVOKE covered only
-- the functions that existed then.
REVOKE EXECUTE ON FUNCTION cognito_reset.client_metadata_bytes(jsonb), cognito_reset.username_characters_allowed(text),
    cognito_reset.username_utf16_length(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cognito_reset.client_metadata_bytes(jsonb), cognito_reset.username_characters_allowed(text),
    cognito_reset.username_utf16_length(text) TO cognito_reset_enqueuer, cognito_reset_worker;

-- The tables whose definitions change, locked together. A paced claim takes them in the order
-- bucket, jobs, imports, but an import takes imports before jobs: no order of ours is safe from
-- both (waiting in either deadlocks with one of them). So each attempt waits at most 100 ms for
-- all four and, when one is held longer (an import in progress), gives them all back and tries
-- again shortly: no deadlock can form, and the fleet never waits behind this migration for
-- longer than that. Under the lock, only the active jobs are read (under a second per million
-- of them) and the checks on `jobs` are NOT VALID. The repairs run under the lock so that no
-- row breaking a new check can slip in between a repair and its check.
DO $lock$
DECLARE
    started constant timestamptz := clock_timestamp();
    lock_timeout_before constant text := current_setting('lock_timeout');
BEGIN
    LOOP
        BEGIN
            PERFORM set_config('lock_timeout', '100ms', true);
            LOCK TABLE cognito_reset.rate_limits, cognito_reset.jobs, cognito_reset.imports,
                cognito_reset.import_rejections IN ACCESS EXCLUSIVE MODE;
            PERFORM set_config('lock_timeout', lock_timeout_before, true);
            RETURN;
        EXCEPTION WHEN lock_not_available THEN
            -- The attempt's locks, and its lock_timeout, went with its subtransaction.
            IF clock_timestamp() - started > interval '10 minutes' THEN
                RAISE EXCEPTION 'could not lock the cognito_reset tables in 10 minutes: a long transaction holds one of them'
                    USING ERRCODE = 'lock_not_available', HINT = 'Migrate again once it has ended.';
            END IF;
            PERFORM pg_sleep(0.1 + random() * 0.2);
        END;
    END LOOP;
END
$lock$;

-- 1. An import belongs to the role that created it: an enqueuer reads and counts only its own
--    imports, records rejections only for them, and attaches jobs only to them (or to none).
--    Imports that exist already get the default's value now, the role running this migration
--    (the schema owner): they belong to it, and no enqueuer can touch them any more. created_by
--    is in none of the enqueuer's column grants (INSERT since 0004, UPDATE since 0001), so its
--    default always applies and it cannot be changed.
ALTER TABLE cognito_reset.imports
    ADD COLUMN created_by text NOT NULL DEFAULT current_user
        CONSTRAINT imports_created_by_length CHECK (char_length(created_by) BETWEEN 1 AND 255);

ALTER TABLE cognito_reset.imports ENABLE ROW LEVEL SECURITY;
CREATE POLICY imports_enqueuer_reads_own ON cognito_reset.imports FOR SELECT TO cognito_reset_enqueuer
    USING (created_by = current_user);
CREATE POLICY imports_enqueuer_inserts_own ON cognito_reset.imports FOR INSERT TO cognito_reset_enqueuer
    WITH CHECK (created_by = current_user);
CREATE POLICY imports_enqueuer_updates_own ON cognito_reset.imports FOR UPDATE TO cognito_reset_enqueuer
    USING (created_by = current_user) WITH CHECK (created_by = current_user);
-- Workers pace, claim and prune every import, as before.
CREATE POLICY imports_worker_all ON cognito_reset.imports FOR ALL TO cognito_reset_worker
    USING (true) WITH CHECK (true);

-- These subqueries read imports as the enqueuer, under imports' row security too; the explicit
-- owner test keeps them right for a role that is also a worker. Each row probes the primary key
-- (a policy's `IN (SELECT ...)` is not hashed: it would scan all of the role's imports for each
-- of the up to millions of rows an import inserts in one statement).
ALTER TABLE cognito_reset.import_rejections ENABLE ROW LEVEL SECURITY;
CREATE POLICY import_rejections_enqueuer_reads_own ON cognito_reset.import_rejections FOR SELECT TO cognito_reset_enqueuer
    USING (EXISTS (SELECT FROM cognito_reset.imports i
                   WHERE i.id = import_rejections.import_id AND i.created_by = current_user));
CREATE POLICY import_rejections_enqueuer_inserts_own ON cognito_reset.import_rejections FOR INSERT TO cognito_reset_enqueuer
    WITH CHECK (EXISTS (SELECT FROM cognito_reset.imports i
                        WHERE i.id = import_rejections.import_id AND i.created_by = current_user));
CREATE POLICY import_rejections_worker_all ON cognito_reset.import_rejections FOR ALL TO cognito_reset_worker
    USING (true) WITH CHECK (true);

-- A foreign key check ignores row security: this policy is what keeps an enqueuer's jobs out of
-- another's import (and its rate).
ALTER POLICY jobs_enqueuer_inserts_own ON cognito_reset.jobs
    WITH CHECK (enqueued_by = current_user
                AND (import_id IS NULL
                     OR EXISTS (SELECT FROM cognito_reset.imports i
                                WHERE i.id = jobs.import_id AND i.created_by = current_user)));

-- 2. A bucket's key is printable ASCII without spaces, 1-200 characters: it is shown in logs,
--    metrics and `rate` output, and typed on command lines. rate_limits is the only place a key
--    is stored; claim_paced creates missing buckets with a plain INSERT, which this check guards.
--    rate_limits is small: the check is validated, and a key it cannot keep stops the migration
--    with the keys named (renaming a bucket is the operator's call: the workers name it too).
DO $keys$
BEGIN
    IF EXISTS (SELECT FROM cognito_reset.rate_limits WHERE key !~ '^[!-~]{1,200}$') THEN
        RAISE EXCEPTION 'cognito_reset.rate_limits has keys that are not 1-200 printable ASCII characters: %',
            (SELECT string_agg(to_jsonb(key)::text, ', ' ORDER BY key) FROM cognito_reset.rate_limits
             WHERE key !~ '^[!-~]{1,200}$')
            USING ERRCODE = 'check_violation',
                  HINT = 'Rename or delete those buckets (and the workers'' COGNITO_RESET_RATE_KEY), then migrate again.';
    END IF;
END
$keys$;
ALTER TABLE cognito_reset.rate_limits
    ADD CONSTRAINT rate_limits_key_printable CHECK (key ~ '^[!-~]{1,200}$');

-- 3. Usernames hold only characters Cognito allows: the old check let no-break and zero-width
--    spaces, bidirectional overrides, byte order marks, private-use and unassigned code points
--    through.
--    And at most 128 UTF-16 code units long, as Cognito counts (at most 128 bytes needs no count).
-- 4. Client metadata: keys and values together at most 262144 bytes (256 KiB) of UTF-8.
--
-- An active job that breaks one fails now, as a worker would fail it, without calling Cognito.
UPDATE cognito_reset.jobs
SET state = 'failed', finished_at = now(), locked_by = NULL, lease_expires_at = NULL,
    last_error_code = 'InvalidInput',
    last_error_message = CASE
        WHEN NOT cognito_reset.username_characters_allowed(username)
        THEN 'Username: may hold only letters, marks, symbols, numbers and punctuation (no spaces or control characters)'
        WHEN octet_length(username) > 128 AND cognito_reset.username_utf16_length(username) > 128
        THEN 'Username: must be 1-128 characters'
        ELSE 'ClientMetadata: keys and values together must be at most 262144 bytes (256 KiB) of UTF-8' END
WHERE state IN ('pending', 'running', 'retrying')
  AND (NOT cognito_reset.username_characters_allowed(username)
       OR (octet_length(username) > 128 AND cognito_reset.username_utf16_length(username) > 128)
       OR (octet_length(client_metadata::text) > 262144 AND cognito_reset.client_metadata_bytes(client_metadata) > 262144));

-- The text form of the metadata is never shorter than the keys and values it quotes: when it
-- fits, the exact count (a function call, some fifteen times slower) is not needed.
ALTER TABLE cognito_reset.jobs
    DROP CONSTRAINT jobs_username_characters,
    ADD CONSTRAINT jobs_username_characters CHECK (cognito_reset.username_characters_allowed(username)) NOT VALID,
    ADD CONSTRAINT jobs_username_utf16_length
        CHECK (octet_length(username) <= 128 OR cognito_reset.username_utf16_length(username) <= 128) NOT VALID,
    ADD CONSTRAINT jobs_client_metadata_size
        CHECK (octet_length(client_metadata::text) <= 262144
               OR cognito_reset.client_metadata_bytes(client_metadata) <= 262144) NOT VALID;

-- 5. A job's (and an import's) run_at lies in [1970, 3000), the range the command line accepts:
--    no negative Unix times, and nothing near the instants client libraries use for "never"
--    (Foundation's distantFuture is the year 4001). A time before 1970 becomes the row's creation
--    time (the job runs now, as it would have); a job waiting for the year 3000 or later was
--    meant for "never", and is cancelled.
UPDATE cognito_reset.jobs
SET state = CASE WHEN run_at >= '3000-01-01T00:00:00Z' AND state IN ('pending', 'retrying') THEN 'cancelled' ELSE state END,
    finished_at = CASE WHEN run_at >= '3000-01-01T00:00:00Z' AND state IN ('pending', 'retrying') THEN now() ELSE finished_at END,
    run_at = least(greatest(created_at, '1970-01-01T00:00:00Z'), now())
WHERE (state IN ('pending', 'retrying') AND (run_at < '1970-01-01T00:00:00Z' OR run_at >= '3000-01-01T00:00:00Z'))
   OR (state = 'running' AND run_at < '1970-01-01T00:00:00Z');  -- claimed, so not in the future
UPDATE cognito_reset.imports
SET run_at = least(greatest(created_at, '1970-01-01T00:00:00Z'), now())
WHERE run_at < '1970-01-01T00:00:00Z' OR run_at >= '3000-01-01T00:00:00Z';

ALTER TABLE cognito_reset.jobs
    ADD CONSTRAINT jobs_run_at_range
        CHECK (run_at >= '1970-01-01T00:00:00Z' AND run_at < '3000-01-01T00:00:00Z') NOT VALID;
ALTER TABLE cognito_reset.imports
    ADD CONSTRAINT imports_run_at_range
        CHECK (run_at >= '1970-01-01T00:00:00Z' AND run_at < '3000-01-01T00:00:00Z');

-- 6. Whether a file (by its SHA-256) was imported before, by anyone. Row security now hides other
--    roles' imports from an enqueuer, but "this exact file was imported already" must hold across
--    roles (the inbox service and an operator importing the same file would otherwise reset users
--    twice): this answers with the first such import's id and time only, nothing else of it.
CREATE FUNCTION cognito_reset.previous_import(file_sha256 text)
RETURNS TABLE (id bigint, created_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT i.id, i.created_at FROM cognito_reset.imports AS i
    WHERE i.sha256 = file_sha256 ORDER BY i.id LIMIT 1
$$;
REVOKE EXECUTE ON FUNCTION cognito_reset.previous_import(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cognito_reset.previous_import(text) TO cognito_reset_enqueuer, cognito_reset_worker;
