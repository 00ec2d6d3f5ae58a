"""Writes the mail corpus of ami-mail's tests (run from anywhere:
`python3 tests/mail-corpus/generate.py`). The messages are real-shaped but
made up; the PDF and the spreadsheet are docs/examples'. The 15 MiB message
is not here: the test builds it."""
import base64, quopri, os
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.dirname(os.path.dirname(here))
os.chdir(here)
pdf = open(f'{root}/docs/examples/candidature.pdf','rb').read()
xlsx = open(f'{root}/docs/examples/budget.xlsx','rb').read()
def b64(data):
    s = base64.b64encode(data).decode()
    return '\n'.join(s[i:i+76] for i in range(0, len(s), 76))
def qp(text):
    return quopri.encodestring(text.encode('utf-8')).decode()
def write(name, text, crlf=False):
    data = text.encode('utf-8')
    if crlf:
        data = data.replace(b'\n', b'\r\n')
    open(name,'wb').write(data)

XLSX = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet'

body1 = """Bonjour,

Veuillez trouver ci-joint le dossier de candidature de la Ville de Nevers à l'appel à manifestation d'intérêt « Au cœur des territoires », ainsi que le budget prévisionnel.

Bien cordialement,

Élodie Marchand
Directrice générale des services
Mairie de Nevers – 58000 Nevers
"""
write('01-candidature-nevers.eml', f"""Return-Path: <dgs@mairie-nevers.fr>
Received: from mx2.cnam.example (mx2.cnam.example [192.0.2.25])
	by imap.cnam.example (Postfix) with LMTP id 4F2A1C0042
	for <ami@cnam.example>; Wed, 14 Oct 2020 16:05:42 +0200 (CEST)
Received: from smtp.mairie-nevers.fr (smtp.mairie-nevers.fr [198.51.100.7])
	by mx2.cnam.example (Postfix) with ESMTPS id 9B1E2A0011
	for <ami@cnam.example>; Wed, 14 Oct 2020 16:05:40 +0200 (CEST)
Received: from [10.0.0.12] (poste-dgs.mairie-nevers.local [10.0.0.12])
	by smtp.mairie-nevers.fr (Postfix) with ESMTPSA id 77C3D20005
	for <ami@cnam.example>; Wed, 14 Oct 2020 16:04:58 +0200 (CEST)
Message-ID: <3f9c2a1e-7b4d-4c1a-9e0f-5a6b7c8d9e01@mairie-nevers.fr>
Date: Wed, 14 Oct 2020 16:04:55 +0200
From: =?UTF-8?Q?=C3=89lodie_Marchand_=E2=80=93_Mairie_de_Nevers?= <dgs@mairie-nevers.fr>
To: AMI Au coeur des territoires <ami@cnam.example>
Subject: =?UTF-8?Q?Candidature_AMI_=E2=80=93_Ville_de_Nevers?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="------------nevers-7A3C9E"
Content-Language: fr

This is a multi-part message in MIME format.
--------------nevers-7A3C9E
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: quoted-printable

{qp(body1)}
--------------nevers-7A3C9E
Content-Type: application/pdf; name="dossier-candidature-nevers.pdf"
Content-Disposition: attachment; filename="dossier-candidature-nevers.pdf"
Content-Transfer-Encoding: base64

{b64(pdf)}

--------------nevers-7A3C9E
Content-Type: {XLSX};
 name*=UTF-8''budget%20pr%C3%A9visionnel.xlsx
Content-Disposition: attachment;
 filename*=UTF-8''budget%20pr%C3%A9visionnel.xlsx
Content-Transfer-Encoding: base64

{b64(xlsx)}

--------------nevers-7A3C9E--
""", crlf=True)

inner = f"""From: =?UTF-8?Q?Service_urbanisme_=E2=80=93_Ch=C3=A2teauroux?= <urbanisme@ville-chateauroux.fr>
To: Cabinet du maire <cabinet@ville-chateauroux.fr>
Subject: =?UTF-8?Q?Dossier_de_candidature_Ch=C3=A2teauroux_=E2=80=93_AMI?=
Date: Thu, 05 Nov 2020 11:20:00 +0100
Message-ID: <interne-4521@ville-chateauroux.fr>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="interne-b2"

--interne-b2
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Voici le dossier complet pour l'AMI, =E0 transmettre =E0 la Cnam.

--interne-b2
Content-Type: application/pdf
Content-Disposition: attachment;
 filename="=?UTF-8?Q?dossier_de_candidature_Ch=C3=A2teauroux.pdf?="
Content-Transfer-Encoding: base64

{b64(pdf)}
--interne-b2
Content-Type: {XLSX}
Content-Disposition: attachment;
 filename*0*=UTF-8''budget%20pr%C3%A9;
 filename*1*=visionnel%202021.xlsx
Content-Transfer-Encoding: base64

{b64(xlsx)}
--interne-b2--
"""
outer_text = """Bonjour,

Je vous transfère la candidature de la Ville de Châteauroux, préparée par notre service urbanisme.

Cordialement,
Le cabinet du maire
"""
write('02-transfert-chateauroux.eml', f"""Received: from mx1.cnam.example (mx1.cnam.example [192.0.2.24])
	by imap.cnam.example (Postfix) with LMTP id 11AA22BB33
	for <ami@cnam.example>; Fri, 6 Nov 2020 09:12:03 +0100 (CET)
Message-ID: <TR-20201106-0912@ville-chateauroux.fr>
Date: Fri, 6 Nov 2020 09:11:58 +0100
From: Cabinet du maire <cabinet@ville-chateauroux.fr>
To: ami@cnam.example
Subject: =?UTF-8?B?VFIgOiBEb3NzaWVyIGRlIGNhbmRpZGF0dXJlIENow6J0ZWF1cm91eCDigJMgQU1J?=
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="exterieur-a1"

--exterieur-a1
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: base64

{b64(outer_text.encode())}
--exterieur-a1
Content-Type: message/rfc822
Content-Disposition: inline

{inner}
--exterieur-a1--
""")

write('03-sans-message-id.eml', """Received: from mx1.cnam.example (mx1.cnam.example [192.0.2.24])
	by imap.cnam.example (Postfix) with LMTP id 5C5C5C5C5C
	for <ami@cnam.example>; Mon, 12 Oct 2020 08:30:17 +0200 (CEST)
Date: Mon, 12 Oct 2020 08:29:51 +0200
From: secretariat@saintdiedesvosges.fr
To: ami@cnam.example
Subject: =?ISO-8859-1?Q?Dossier_Saint-Di=E9-des-Vosges?=
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

Bonjour,

Le dossier de la commune suivra par courrier s=E9par=E9.

Le secr=E9tariat g=E9n=E9ral
""")

html = """<html><head><meta charset="utf-8"></head><body>
<p>Bonjour,</p>
<p>Notre candidature &agrave; l&#39;AMI est jointe &agrave; ce message.</p>
<p>Le maire de <b>Ch&acirc;teau-Thierry</b></p>
</body></html>
"""
write('04-date-seule.eml', f"""Date: Fri, 6 Nov 2020 23:30:00 +0100
From: "Ville de Chateau-Thierry" <cnam@chateau-thierry.fr>
To: ami@cnam.example
Subject: Candidature AMI Chateau-Thierry
Message-ID: <c-t-2020-11-06@chateau-thierry.fr>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="ct-sep"

--ct-sep
Content-Type: text/html; charset=UTF-8
Content-Transfer-Encoding: quoted-printable

{qp(html)}
--ct-sep
Content-Type: application/pdf
Content-Transfer-Encoding: base64

{b64(pdf)}
--ct-sep--
""")

write('05-limite-de-vague.eml', f"""Received: from mx1.cnam.example (mx1.cnam.example [192.0.2.24])
	by imap.cnam.example (Postfix) with LMTP id DEADLINE01
	for <ami@cnam.example>; Fri, 6 Nov 2020 23:59:59 +0100 (CET)
Received: from smtp.ville-epinal.fr (smtp.ville-epinal.fr [203.0.113.9])
	by mx1.cnam.example (Postfix) with ESMTPS id DEADLINE00
	for <ami@cnam.example>; Fri, 6 Nov 2020 23:59:58 +0100 (CET)
Date: Sat, 7 Nov 2020 00:00:05 +0100
From: =?UTF-8?Q?Mairie_d=E2=80=99=C3=89pinal?= <ami@ville-epinal.fr>
To: ami@cnam.example
Subject: =?UTF-8?Q?Candidature_=C3=89pinal_(88)_=E2=80=93_derni=C3=A8re_minute?=
Message-ID: <epinal-derniere-minute@ville-epinal.fr>
MIME-Version: 1.0
Content-Type: text/plain; charset=UTF-8
Content-Transfer-Encoding: 8bit

Bonjour, voici notre candidature, envoyée juste avant la clôture de la première vague.
""")

write('06-mime-casse.eml', f"""Received: from mx1.cnam.example by imap.cnam.example with LMTP; Tue, 13 Oct 2020 10:00:00 +0200
Date: Tue, 13 Oct 2020 09:59:30 +0200
From: mairie@exemple-commune.fr
To: ami@cnam.example
Subject: Candidature
Message-ID: <casse-1@exemple-commune.fr>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="frontiere-annoncee"

--autre-frontiere
Content-Type: text/plain; charset=UTF-8

Voici notre dossier.

--autre-frontiere
Content-Type: application/pdf; name="dossier.pdf"
Content-Transfer-Encoding: base64

{b64(pdf)}
--autre-frontiere--
""")

write('07-sans-date.eml', """From: mairie@exemple-commune.fr
To: ami@cnam.example
Subject: Candidature sans date
Message-ID: <sans-date@exemple-commune.fr>

Bonjour, voici notre candidature.
""")

write('08-pas-un-message.eml', """Bonjour,
voici notre dossier, que nous avons copie-colle ici.
Cordialement.
""")

write('09-sans-expediteur.eml', """Received: from mx1.cnam.example by imap.cnam.example with LMTP; Tue, 13 Oct 2020 10:00:00 +0200
Date: Tue, 13 Oct 2020 09:59:30 +0200
To: ami@cnam.example
Subject: Candidature
Message-ID: <sans-from@exemple-commune.fr>

Bonjour.
""")

# mbox: three messages, one with a >From quoted line
def mbox_msg(n, day, subject, body):
    return f"""From ami-{n}@exemple.fr {day}
Received: from mx1.cnam.example by imap.cnam.example with LMTP; {day_rfc[n]}
From: mairie{n}@exemple.fr
To: ami@cnam.example
Subject: {subject}
Message-ID: <mbox-{n}@exemple.fr>
Date: {day_rfc[n]}

{body}
"""
day_rfc = {1: 'Tue, 20 Oct 2020 09:00:00 +0200', 2: 'Wed, 21 Oct 2020 10:00:00 +0200', 3: 'Thu, 22 Oct 2020 11:00:00 +0200'}
mbox = (mbox_msg(1, 'Tue Oct 20 07:00:00 2020', 'Premier message', 'Premier.')
        + mbox_msg(2, 'Wed Oct 21 08:00:00 2020', 'Deuxieme message', 'Une ligne qui commence par From dans le corps :\n>From here on, the text is quoted.\nFin.')
        + mbox_msg(3, 'Thu Oct 22 09:00:00 2020', 'Troisieme message', 'Troisième.'))
write('boite.mbox', mbox)

os.makedirs('maildir/cur', exist_ok=True)
os.makedirs('maildir/new', exist_ok=True)
def md(n, ts, subject):
    return f"""Received: from mx1.cnam.example by imap.cnam.example with LMTP; {ts}
From: mairie{n}@exemple.fr
To: ami@cnam.example
Subject: {subject}
Message-ID: <maildir-{n}@exemple.fr>
Date: {ts}

Message {n}.
"""
write('maildir/cur/1602680000.M1P100.imap:2,S', md(1, 'Wed, 14 Oct 2020 14:53:20 +0200', 'Maildir un'))
write('maildir/new/1602690000.M2P100.imap', md(2, 'Wed, 14 Oct 2020 17:40:00 +0200', 'Maildir deux'))
write('maildir/cur/1602700000.M3P100.imap:2,S', md(3, 'Wed, 14 Oct 2020 20:26:40 +0200', 'Maildir trois'))
